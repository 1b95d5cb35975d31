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
def ops_client(client, users, step_up):
    client.force_login(users["ops"])
    return step_up(client)  # production actions need a recent second factor


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


def test_change_request_admin__decided_on_its_change_request_page__no_bulk_action(client, users, envs, make_flag, step_up):
    from changes.models import ChangeRequest

    make_flag("pay")
    state = FlagEnvironment.objects.get(flag__key="pay", environment__name="production")
    change = services.change_request_create(state=state, enabled=True, by=users["ops"], reason="launch")
    request = ChangeRequest.objects.get(change_class="flag_change")
    client.force_login(users["admin"])
    step_up(client)  # production actions need a recent second factor
    listing = client.get(reverse("admin:flags_flagchangerequest_changelist")).content.decode()
    assert 'name="action"' not in listing  # no bulk approve
    assert reverse("admin:changes_changerequest_change", args=[request.pk]) in listing
    client.post(reverse("admin:changes_changerequest_act", args=[request.pk, "approve"]), {"text": "go"})
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


# --- imported constructs that can never match: kept, badged, saved unchanged -----------------------------
IMPORTED = {"version": 2, "segments": [{"id": 41, "constraints": [
    {"contextName": "plan", "operator": "IN", "values": []}]}], "features": [
    {"name": "Feature.Hellø", "enabled": True, "strategies": [{"name": "default", "constraints": [
        {"contextName": "plan", "operator": "NOT_A_VALID_OPERATOR", "value": "x"}]}]},
    {"name": "two-parents", "enabled": True, "strategies": [],
     "dependencies": [{"feature": "Feature.Hellø"}, {"feature": "gone"}]},
    {"name": "missing-segment", "enabled": True, "strategies": [{"name": "default", "segments": [404]}]},
]}


@pytest.fixture
def imported(envs):
    services.flags_import(environment=envs["staging"], doc=IMPORTED, by="import_flags")
    return {f.key: f for f in FeatureFlag.objects.all()}


def test_admin__imported_constructs__warning_badges_saying_why(ops_client, client, users, imported):
    page = ops_client.get(reverse("admin:flags_featureflag_changelist")).content.decode()
    assert "&#9888;" in page and "unknown operator evaluates to false" in page
    assert "parent &#x27;gone&#x27; does not exist" in page and "segment 404 does not exist" in page
    state_page = ops_client.get(_state_url(imported["Feature.Hellø"], "staging")).content.decode()
    assert "never matches here" in state_page.lower() and "NOT_A_VALID_OPERATOR" in state_page
    client.force_login(users["admin"])
    segments = client.get(reverse("admin:flags_segment_changelist")).content.decode()
    assert "a constraint without values never matches" in segments


def test_admin__imported_flag_saved_unchanged__not_refused_and_kept(ops_client, imported, envs):
    flag = imported["two-parents"]
    response = ops_client.post(reverse("admin:flags_featureflag_change", args=[flag.pk]),
                               _flag_form(description="still two parents"), follow=True)
    assert response.status_code == 200 and "errornote" not in response.content.decode()
    flag.refresh_from_db()
    assert flag.description == "still two parents"
    assert flag.dependencies == [{"feature": "Feature.Hellø"}, {"feature": "gone"}]
    hello = imported["Feature.Hellø"]
    state = services.state_for(hello, envs["staging"])
    response = ops_client.post(_state_url(hello, "staging"), {
        "action": "save", "strategies": json.dumps(state.strategies), "variants": "[]"}, follow=True)
    assert "saved" in response.content.decode().lower()
    state.refresh_from_db()
    assert not state.enabled and state.strategies[0]["constraints"][0]["operator"] == "NOT_A_VALID_OPERATOR"


def test_admin__new_constraint_that_never_matches__refused_saying_why(ops_client, imported):
    hello = imported["Feature.Hellø"]
    strategies = [{"name": "default", "constraints": [{"contextName": "plan", "operator": "IN", "values": []}]}]
    response = ops_client.post(_state_url(hello, "staging"), {
        "action": "save", "enabled": "on", "strategies": json.dumps(strategies), "variants": "[]"}, follow=True)
    assert "IN needs at least one value" in response.content.decode()


def test_admin__imported_segment_saved_unchanged__not_refused(client, users, imported):
    client.force_login(users["admin"])
    segment = Segment.objects.get(pk=41)
    response = client.post(reverse("admin:flags_segment_change", args=[segment.pk]), {
        "name": segment.name, "description": "kept as imported", "constraints": json.dumps(segment.constraints)},
        follow=True)
    assert response.status_code == 200 and "errornote" not in response.content.decode()
    segment.refresh_from_db()
    assert segment.description == "kept as imported" and segment.constraints[0]["values"] == []


def test_flag_edit__imported_dependencies__replaced_by_a_parent_set_in_the_portal(imported):
    flag = services.flag_update(flag=imported["two-parents"], data={"parent": imported["missing-segment"]})
    assert flag.dependencies == [{"feature": "missing-segment", "enabled": True}]
    assert "dependencies" in flag.unleash["keys"]
