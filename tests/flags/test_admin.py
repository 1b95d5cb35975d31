"""Admin: matrix, per-environment editing with validation messages, copy with diff, evaluate as, stale list."""
import json

import pytest
from django.urls import reverse

from flags import services
from flags.models import FeatureFlag, FlagChangeRequest, FlagEnvironment
from pmrelease import errors

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
    response = ops_client.post(reverse("admin:flags_featureflag_change", args=[checkout.pk]), {
        "description": "edited", "type": "release", "owner": "", "tags": "[]", "lifecycle": "initial", "parent": "",
        "parent_enabled": "on", "parent_variants": "[]", "monitoring_metrics": "[]", "monitoring_alerts": "[]"},
        follow=True)
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
