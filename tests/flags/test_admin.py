"""Admin: matrix, per-environment editing with validation messages, copy with diff, evaluate as, stale list."""
import json

import pytest
from django.urls import reverse

from flags import services
from flags.models import ApiKey, ApprovalPolicy, FeatureFlag, FlagChangeRequest, FlagEnvironment, Segment
from pmrelease import errors
from pmrelease.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops_client(client, users):
    client.force_login(users["ops"])
    return client


@pytest.fixture
def checkout(make_flag):
    return make_flag("new-checkout", enabled={"staging": True}, strategies={"staging": [
        {"name": "flexibleRollout", "parameters": {"rollout": "40", "stickiness": "default", "groupId": "nc"},
         "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}]})


def _flag_form(**fields):
    """The flag change form's fields as posted (a release flag without dependency), with ``fields`` changed."""
    return {"description": "", "type": "release", "owner": "", "tags": "[]", "lifecycle": "initial", "parent": "",
            "parent_enabled": "on", "parent_variants": "[]", "monitoring_metrics": "[]", "monitoring_alerts": "[]",
            **fields}


def _state_url(flag, env):
    return reverse("admin:flags_featureflag_state", args=[flag.pk, env])


def test_admin_matrix__flags_by_environment__on_off_and_toggle(ops_client, checkout):
    url = reverse("admin:flags_featureflag_matrix")
    page = ops_client.get(url).content.decode()
    assert "new-checkout" in page and "on 40%" in page and "turn on" in page
    state = FlagEnvironment.objects.get(flag=checkout, environment__name="development")
    ops_client.post(url, {"state": state.pk, "enabled": "1"})
    assert FlagEnvironment.objects.get(pk=state.pk).enabled
    assert "new-checkout" in ops_client.get(reverse("admin:flags_featureflag_changelist")).content.decode()


def test_admin_state__invalid_constraint__refused_with_the_validation_message(ops_client, checkout):
    strategies = [{"name": "default", "constraints": [{"contextName": "v", "operator": "SEMVER_GT", "value": "v1"}]}]
    response = ops_client.post(_state_url(checkout, "staging"), {
        "action": "save", "enabled": "on", "strategies": json.dumps(strategies), "variants": "[]"}, follow=True)
    page = response.content.decode()
    assert "not a valid semantic version" in page
    assert FlagEnvironment.objects.get(flag=checkout, environment__name="staging").strategies[0]["name"] == \
        "flexibleRollout"
    response = ops_client.post(_state_url(checkout, "staging"), {
        "action": "save", "strategies": "[{oops", "variants": "[]"}, follow=True)
    assert "valid JSON" in response.content.decode()


def test_admin_state__rollout_form__percentage_applied(ops_client, checkout):
    ops_client.post(_state_url(checkout, "qa"), {"action": "rollout", "kind": "percentage", "percentage": "15"})
    state = FlagEnvironment.objects.get(flag=checkout, environment__name="qa")
    assert state.enabled and state.strategies[0]["parameters"]["rollout"] == "15"


def test_admin_state__copy_staging_to_production__diff_first_then_proposed_for_approval(ops_client, checkout):
    url = _state_url(checkout, "production")
    preview = ops_client.post(url, {"action": "copy-preview", "source": "staging"}).content.decode()
    assert "strategies" in preview and "flexibleRollout" in preview and "Copy these changes" in preview
    assert not FlagEnvironment.objects.get(flag=checkout, environment__name="production").enabled
    page = ops_client.post(url, {"action": "copy", "source": "staging"}, follow=True).content.decode()
    assert "second person" in page
    ops_client.post(url, {"action": "propose", "enabled": "on", "strategies": "[]", "variants": "[]"})
    assert FlagChangeRequest.objects.filter(state__environment__name="production", status="pending").count() == 1


def test_admin_state__evaluate_as__shows_deciding_strategy_and_constraint(ops_client, checkout):
    page = ops_client.post(_state_url(checkout, "staging"), {
        "action": "evaluate", "context": '{"targetingKey": "u1", "plan": "free"}'}).content.decode()
    assert "disabled" in page and "plan" in page
    history = ops_client.get(_state_url(checkout, "staging")).content.decode()
    assert "flag.state.update" in history


def test_admin_stale__page_lists_stale_flags(ops_client, checkout):
    FeatureFlag.objects.filter(pk=checkout.pk).update(created_at="2020-01-01T00:00:00Z")
    assert "expected lifetime" in ops_client.get(reverse("admin:flags_featureflag_stale")).content.decode()


def test_admin_state__developer_on_production__forbidden(client, users, checkout):
    client.force_login(users["dev"])
    assert client.get(_state_url(checkout, "production")).status_code == 403
    page = client.get(_state_url(checkout, "development")).content.decode()
    assert "Apply" in page


def test_flag_admin__service_refuses_the_save__error_message_and_nothing_saved(ops_client, checkout, monkeypatch):
    def refuse(**kwargs):
        raise errors.TransitionNotAllowed("the flag changed meanwhile", reasons=["reload the page"])

    monkeypatch.setattr(services, "flag_update", refuse)
    response = ops_client.post(reverse("admin:flags_featureflag_change", args=[checkout.pk]),
                               _flag_form(description="edited"), follow=True)
    assert response.status_code == 200
    assert "flag changed meanwhile — reload the page" in response.content.decode()
    assert FeatureFlag.objects.get(pk=checkout.pk).description == ""


def test_change_request_admin__approve_action_applies__edit_and_delete_not_allowed(client, users, envs, make_flag):
    make_flag("pay")
    state = FlagEnvironment.objects.get(flag__key="pay", environment__name="production")
    change = services.change_request_create(state=state, enabled=True, by=users["ops"], reason="launch")
    client.force_login(users["admin"])
    client.post(reverse("admin:flags_flagchangerequest_changelist"),
                {"action": "approve", "_selected_action": [change.pk], "index": 0})
    assert FlagChangeRequest.objects.get(pk=change.pk).status == "applied"
    assert FlagEnvironment.objects.get(pk=state.pk).enabled
    response = client.post(reverse("admin:flags_flagchangerequest_delete", args=[change.pk]), {"post": "yes"})
    assert response.status_code == 403 and FlagChangeRequest.objects.filter(pk=change.pk).exists()
    page = client.get(reverse("admin:flags_flagchangerequest_change", args=[change.pk])).content.decode()
    assert 'name="_save"' not in page


def test_admin_matrix__state_not_a_number__message_not_500(client, users, envs, make_flag):
    make_flag("f")
    client.force_login(users["ops"])
    response = client.post(reverse("admin:flags_featureflag_matrix"), {"state": "abc", "enabled": "1"}, follow=True)
    assert response.status_code == 200 and "no such flag state" in response.content.decode().lower()


def test_admin_copy_preview__source_environment_not_visible__refused_and_not_shown(client, users, envs, make_flag):
    flag = make_flag("f", enabled={"production": True}, strategies={"production": [
        {"name": "userWithId", "parameters": {"userIds": "secret-ceo-id"}, "constraints": []}]})
    client.force_login(users["dev"])
    url = reverse("admin:flags_featureflag_state", args=[flag.pk, "development"])
    response = client.post(url, {"action": "copy-preview", "source": "production"})
    assert response.status_code == 403 and b"secret-ceo-id" not in response.content
    page = client.get(url)
    assert "production" not in [env.name for env in page.context["environments"]]


def test_flag_admin__invalid_tags__form_error_not_403(client, users, envs, make_flag):
    flag = make_flag("f")
    client.force_login(users["ops"])
    response = client.post(reverse("admin:flags_featureflag_change", args=[flag.pk]), _flag_form(tags='"abc"'))
    assert response.status_code == 200 and "tags must be a list of non-empty strings" in response.content.decode()
    assert FeatureFlag.objects.get(pk=flag.pk).tags == []


def test_flag_admin__developer_archives_flag_on_in_production__form_error_and_unchanged(client, users, envs,
                                                                                         make_flag):
    flag = make_flag("f", enabled={"production": True})
    client.force_login(users["dev"])
    response = client.post(reverse("admin:flags_featureflag_change", args=[flag.pk]), _flag_form(lifecycle="archived"))
    assert response.status_code == 200 and "needs full access there" in response.content.decode()
    assert FeatureFlag.objects.get(pk=flag.pk).lifecycle != "archived"


def test_segment_admin__delete_referenced_segment__refused_with_message(client, users, used_segment):
    segment = used_segment
    client.force_login(users["admin"])
    response = client.post(reverse("admin:flags_segment_delete", args=[segment.pk]), {"post": "yes"}, follow=True)
    assert response.status_code == 200 and "f @ staging" in response.content.decode()
    assert Segment.objects.filter(pk=segment.pk).exists()
    services.flag_state_update(state=FlagEnvironment.objects.get(flag__key="f", environment__name="staging"),
                               enabled=False)


def test_segment_admin__delete_unused_segment__deleted_and_audited(client, users, envs):
    segment = services.segment_save(name="unused", constraints=[])
    client.force_login(users["admin"])
    client.post(reverse("admin:flags_segment_delete", args=[segment.pk]), {"post": "yes"})
    assert not Segment.objects.exists() and AuditEvent.objects.filter(action="flag.segment.delete").exists()


def test_api_key_admin__delete__not_allowed_revoke_only(client, users, envs, make_key):
    make_key("staging")
    key = ApiKey.objects.get()
    client.force_login(users["admin"])
    response = client.post(reverse("admin:flags_apikey_delete", args=[key.pk]), {"post": "yes"})
    assert response.status_code == 403 and ApiKey.objects.filter(pk=key.pk).exists()


def test_approval_policy_admin__save__through_audited_service(client, users, envs):
    client.force_login(users["admin"])
    client.post(reverse("admin:flags_approvalpolicy_add"), {"environment": envs["staging"].pk,
                                                            "require_approval": "on"})
    assert ApprovalPolicy.objects.get().require_approval is True
    event = AuditEvent.objects.get(action="flag.approval_policy.set")
    assert event.after == {"environment": "staging", "require_approval": True}
