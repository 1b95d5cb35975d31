"""Regression tests for the defects found in the flags review (one block per defect)."""
import datetime as dt
import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from flags import services, snapshots, usage
from flags.models import (
    ApiKey,
    ApprovalPolicy,
    FeatureFlag,
    FlagChangeRequest,
    FlagEnvironment,
    FlagMetricsBucket,
    GradualRollout,
    RampStatus,
    Segment,
)
from pmrelease import errors
from pmrelease.models import AuditEvent

pytestmark = pytest.mark.django_db


def _state(key, env):
    return FlagEnvironment.objects.select_related("flag", "environment").get(flag__key=key, environment__name=env)


def _ofrep_value(raw, key="f"):
    response = Client().post(f"/ofrep/v1/evaluate/flags/{key}", data='{"context":{"targetingKey":"u"}}',
                             content_type="application/json", HTTP_AUTHORIZATION=raw)
    return response.json().get("value")


# --- 1. ramp start: nothing half-done ---------------------------------------------------------------------
@pytest.mark.parametrize("stickiness", [["x"], {"x": 1}, 123, ""])
def test_ramp_start_api__bad_stickiness__400_and_nothing_saved(api, users, envs, make_flag, make_key, stickiness):
    make_flag("f", enabled={"staging": True})
    raw = make_key("staging")
    before = _state("f", "staging").config()
    assert _ofrep_value(raw) is True
    response = api(users["ops"]).post("/api/v1/flags/f/environments/staging/ramp/",
                                      {"steps": [{"percentage": 10, "minutes": 0}], "stickiness": stickiness},
                                      format="json")
    assert response.status_code == 400 and "stickiness" in response.json()["detail"]
    assert not GradualRollout.objects.exists()
    assert _state("f", "staging").config() == before
    snapshots.reset()
    assert _ofrep_value(raw) is True


def test_ramp_start__first_step_fails__ramp_and_strategy_rolled_back(envs, make_flag, monkeypatch):
    make_flag("f", enabled={"staging": True})
    before = _state("f", "staging").config()

    def failing(**kwargs):
        raise errors.ValidationFailed("step refused")

    monkeypatch.setattr(services, "flag_set_rollout", failing)
    with pytest.raises(errors.ValidationFailed):
        services.ramp_start(state=_state("f", "staging"), steps=[{"percentage": 10, "minutes": 0}])
    assert not GradualRollout.objects.exists()
    assert _state("f", "staging").config() == before


# --- 2. one failing ramp does not block the others ----------------------------------------------------------
def test_advance_due_ramps__one_ramp_fails__others_advance_and_failing_one_paused_with_reason(envs, make_flag):
    now = timezone.now()
    for key in ("a", "b"):
        make_flag(key, enabled={"staging": True})
        services.ramp_start(state=_state(key, "staging"), steps=[{"percentage": 10, "minutes": 1}], now=now)
    # the configuration of "a" became invalid meanwhile (e.g. a strategy edited outside the services)
    FlagEnvironment.objects.filter(pk=_state("a", "staging").pk).update(
        strategies=[{"name": "flexibleRollout", "parameters": {"rollout": "0", "stickiness": ""}, "constraints": []}])
    assert services.advance_due_ramps(now=now + dt.timedelta(minutes=5)) == 1
    a = GradualRollout.objects.get(state__flag__key="a")
    b = GradualRollout.objects.get(state__flag__key="b")
    assert b.current_step == 0 and b.status == RampStatus.COMPLETED
    assert a.status == RampStatus.PAUSED and a.current_step == -1
    event = AuditEvent.objects.filter(action="flag.ramp.pause").latest("id")
    assert "stickiness" in event.reason and event.actor_username == "system"


# --- 3. the rollout API respects the approval policy -------------------------------------------------------
def test_rollout_api__person_in_production__proposed_as_change_request_202(api, users, envs, make_flag):
    make_flag("f")
    response = api(users["ops"]).post("/api/v1/flags/f/environments/production/rollout/", {"percentage": 100},
                                      format="json")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert not _state("f", "production").enabled
    change = FlagChangeRequest.objects.get()
    assert change.proposed["enabled"] is True and change.proposed["strategies"][0]["parameters"]["rollout"] == "100"


def test_flag_set_rollout__person_where_approval_required__approval_required(users, envs, make_flag):
    make_flag("f")
    with pytest.raises(services.ApprovalRequired):
        services.flag_set_rollout(environment=envs["production"], key="f", percentage=10, by=users["ops"])
    assert not _state("f", "production").enabled
    # the system (deployment engine) is not subject to the policy
    assert services.flag_set_rollout(environment=envs["production"], key="f", percentage=10).enabled


# --- 4. flag-level edits cannot turn a flag off where the editor has no full access --------------------------
@pytest.mark.parametrize("data", [{"lifecycle": "archived"}, {"parent": "p"}])
def test_flag_update_api__developer_archives_or_reparents_flag_on_in_production__403(api, users, envs, make_flag,
                                                                                     data):
    make_flag("p")
    make_flag("f", enabled={"production": True})
    response = api(users["dev"]).patch("/api/v1/flags/f/", data, format="json")
    assert response.status_code == 403 and "production" in response.json()["detail"]
    flag = FeatureFlag.objects.get(key="f")
    assert flag.lifecycle != "archived" and flag.parent_id is None


def test_flag_update__archive_flag_on_in_approval_environment__refused_pointing_to_change_request(users, envs,
                                                                                                  make_flag):
    make_flag("f", enabled={"production": True})
    with pytest.raises(services.ApprovalRequired, match="change request"):
        services.flag_update(flag=FeatureFlag.objects.get(key="f"), data={"lifecycle": "archived"}, by=users["ops"])
    assert FeatureFlag.objects.get(key="f").lifecycle != "archived"


def test_flag_update__archive_flag_off_where_approval_needed__allowed(users, envs, make_flag):
    make_flag("f", enabled={"development": True})
    flag = services.flag_update(flag=FeatureFlag.objects.get(key="f"), data={"lifecycle": "archived"},
                                by=users["dev"])
    assert flag.lifecycle == "archived"


# --- 5. API keys cannot be deleted in the admin (revoke instead) --------------------------------------------
def test_api_key_admin__delete__not_allowed_revoke_only(client, users, envs, make_key):
    make_key("staging")
    key = ApiKey.objects.get()
    client.force_login(users["admin"])
    response = client.post(reverse("admin:flags_apikey_delete", args=[key.pk]), {"post": "yes"})
    assert response.status_code == 403 and ApiKey.objects.filter(pk=key.pk).exists()


# --- 6. concurrent state edits do not lose each other's changes ---------------------------------------------
def test_flag_state_update__stale_state_object__merges_onto_the_fresh_row(envs, make_flag):
    make_flag("f")
    first, second = _state("f", "staging"), _state("f", "staging")
    services.flag_state_update(state=first, enabled=True)
    services.flag_state_update(state=second, variants=[
        {"name": "a", "weight": 1000, "weightType": "variable", "stickiness": "default"}])
    state = _state("f", "staging")
    assert state.enabled is True and len(state.variants) == 1


# --- 7. segments are deleted through a service ------------------------------------------------------------
def _segment_and_flag(make_flag):
    segment = services.segment_save(name="beta", constraints=[
        {"contextName": "plan", "operator": "IN", "values": ["pro"]}])
    make_flag("f", enabled={"staging": True}, strategies={"staging": [
        {"name": "default", "parameters": {}, "constraints": [], "segments": [segment.pk]}]})
    return segment


def test_segment_delete__referenced_by_a_flag__refused_naming_the_flag(envs, make_flag):
    segment = _segment_and_flag(make_flag)
    with pytest.raises(errors.ValidationFailed, match="f @ staging"):
        services.segment_delete(segment=segment)
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_segment_delete__unused__deleted_bumped_and_audited(envs):
    segment = services.segment_save(name="unused", constraints=[])
    token = snapshots._db_token(snapshots.env_scope(envs["staging"].pk))
    services.segment_delete(segment=segment)
    assert not Segment.objects.exists()
    assert snapshots._db_token(snapshots.env_scope(envs["staging"].pk)) != token
    assert AuditEvent.objects.filter(action="flag.segment.delete").exists()


def test_segment_admin__delete_referenced_segment__refused_with_message(client, users, envs, make_flag):
    segment = _segment_and_flag(make_flag)
    client.force_login(users["admin"])
    response = client.post(reverse("admin:flags_segment_delete", args=[segment.pk]), {"post": "yes"}, follow=True)
    assert response.status_code == 200 and "f @ staging" in response.content.decode()
    assert Segment.objects.filter(pk=segment.pk).exists()
    services.flag_state_update(state=_state("f", "staging"), enabled=False)


def test_segment_admin__delete_unused_segment__deleted_and_audited(client, users, envs):
    segment = services.segment_save(name="unused", constraints=[])
    client.force_login(users["admin"])
    client.post(reverse("admin:flags_segment_delete", args=[segment.pk]), {"post": "yes"})
    assert not Segment.objects.exists() and AuditEvent.objects.filter(action="flag.segment.delete").exists()


# --- 8. a failing environment does not lose the other environments' counts -------------------------------------
def test_usage_flush__one_environment_fails__others_written_and_failed_counts_kept(envs, monkeypatch):
    real = services.metrics_record

    def flaky(*, environment_id, **kwargs):
        if environment_id == envs["development"].pk:
            raise RuntimeError("database is locked")
        return real(environment_id=environment_id, **kwargs)

    monkeypatch.setattr(services, "metrics_record", flaky)
    for env in ("development", "staging", "production"):
        usage.record(envs[env].pk, "f", True)
    with pytest.raises(RuntimeError):
        usage.flush()
    assert usage.pending() == {(envs["development"].pk, "f"): [1, 0, {}]}
    written = set(FlagMetricsBucket.objects.values_list("environment__name", flat=True))
    assert written == {"staging", "production"}


# --- 9. bad input to the APIs is a 4xx, never a 500 ----------------------------------------------------------
@pytest.mark.parametrize("tags", [5, "abc", {"a": 1}])
def test_flag_create_api__tags_not_a_list__400_and_nothing_created(api, users, envs, tags):
    response = api(users["ops"]).post("/api/v1/flags/", {"key": "x", "tags": tags}, format="json")
    assert response.status_code == 400 and "tags must be a list of strings" in response.json()["detail"]
    assert not FeatureFlag.objects.exists()


def test_frontend_api__properties_plain_and_bracketed__answers_200(make_flag, make_key, envs):
    make_flag("f", enabled={"staging": True})
    raw = make_key("staging", "frontend")
    response = Client().get("/api/frontend?properties=foo&properties[x]=1", HTTP_AUTHORIZATION=raw)
    assert response.status_code == 200
    response = Client().get("/api/frontend?properties[x]=1&properties=foo", HTTP_AUTHORIZATION=raw)
    assert response.status_code == 200


def _post(url, raw, body):
    return Client().post(url, data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=raw)


@pytest.mark.parametrize("counts, stop", [
    ({"yes": 2 ** 70, "no": 0}, "2024-01-01T00:01:00Z"),
    ({"yes": 1, "no": 0, "variants": {"a": 2 ** 63}}, "2024-01-01T00:01:00Z"),
    ({"yes": 1, "no": 0}, "0001-01-01T00:00:00+14:00"),
])
def test_client_metrics__out_of_range_count_or_time__400(make_key, envs, counts, stop):
    raw = make_key("staging")
    body = {"appName": "a", "bucket": {"start": "2024-01-01T00:00:00Z", "stop": stop, "toggles": {"f": counts}}}
    response = _post("/api/client/metrics", raw, body)
    assert response.status_code == 400, response.content
    assert not FlagMetricsBucket.objects.exists()


@pytest.mark.parametrize("data", [{"appName": "a", "interval": 2 ** 70}, {"appName": "a", "interval": -1},
                                  {"appName": "a", "started": "0001-01-01T00:00:00+14:00"}])
def test_client_register__out_of_range_interval_or_started__400(make_key, envs, data):
    response = _post("/api/client/register", make_key("staging"), data)
    assert response.status_code == 400, response.content


def test_client_features__huge_client_spec_header__served(make_flag, make_key, envs):
    make_flag("f")
    response = Client().get("/api/client/features", HTTP_AUTHORIZATION=make_key("staging"),
                            HTTP_UNLEASH_CLIENT_SPEC="9" * 5000)
    assert response.status_code == 200 and "segments" in response.json()


def test_admin_matrix__state_not_a_number__message_not_500(client, users, envs, make_flag):
    make_flag("f")
    client.force_login(users["ops"])
    response = client.post(reverse("admin:flags_featureflag_matrix"), {"state": "abc", "enabled": "1"}, follow=True)
    assert response.status_code == 200 and "no such flag state" in response.content.decode().lower()


# --- 10/11. import: malformed files are refused with the problems listed -------------------------------------
@pytest.mark.parametrize("doc, problem", [
    ({"features": [], "segments": [{"id": [1], "constraints": []}]}, "segments[0]: id must be a whole number"),
    ({"features": [], "segments": [{"id": 1, "constraints": 5}]}, "segment 1: constraints must be a list"),
    ({"features": [{"name": "a", "variants": 5}]}, "feature 'a': variants must be a list"),
    ({"features": [{"name": "a", "dependencies": 5}]}, "feature 'a': dependencies must be a list"),
    ({"features": [{"name": "a", "dependencies": [{"feature": ["x"]}]}]},
     "feature 'a': dependency 1: feature must be a flag name"),
    ({"features": [{"name": "a", "variants": ["x"]}]}, "feature 'a': variants: variant 1 must be an object"),
    ({"features": [{"name": "a", "strategies": [{"name": "default", "variants": ["x"]}]}]},
     "feature 'a': strategy 1: variant 1 must be an object"),
    ({"features": [{"name": "a", "dependencies": ["x"]}]}, "feature 'a': dependency 1 must be an object"),
    ({"features": [{"name": "a", "enabled": "false"}]}, "feature 'a': enabled must be true or false"),
    ({"features": [{"name": "a", "impressionData": "false"}]}, "feature 'a': impressionData must be true or false"),
    ({"features": [], "segments": [{"id": 1, "name": "s", "constraints": []}, {"id": 2, "name": "s"}]},
     "segments 1 and 2 have the same name 's'"),
    ({"features": [], "segments": [{"id": 1, "constraints": []}, {"id": 1, "constraints": []}]},
     "segments[1]: id 1 is used twice"),
])
def test_import_document__malformed__refused_with_problem_and_nothing_imported(envs, doc, problem):

    with pytest.raises(errors.ValidationFailed) as refused:
        services.flags_import(environment=envs["staging"], doc=doc, by="test")
    assert problem in refused.value.reasons
    assert not FeatureFlag.objects.exists() and not Segment.objects.exists()


# --- 12. the flag API refuses unknown fields -----------------------------------------------------------------
def test_flag_api__unknown_or_read_only_fields__400_naming_them(api, users, envs, make_flag):
    make_flag("f")
    response = api(users["ops"]).patch("/api/v1/flags/f/", {"descripton": "typo", "created_at": "x"}, format="json")
    assert response.status_code == 400 and "created_at, descripton" in response.json()["detail"]
    response = api(users["ops"]).post("/api/v1/flags/", {"key": "g", "colour": "red"}, format="json")
    assert response.status_code == 400 and "colour" in response.json()["detail"]
    assert not FeatureFlag.objects.filter(key="g").exists()


def test_flag_api__owner_by_username__set_or_refused(api, users, envs, make_flag):
    make_flag("f")
    assert api(users["ops"]).patch("/api/v1/flags/f/", {"owner": "qa"}, format="json").json()["owner"] == "qa"
    response = api(users["ops"]).patch("/api/v1/flags/f/", {"owner": "nobody"}, format="json")
    assert response.status_code == 400 and "nobody" in response.json()["detail"]


# --- 13. "enabled" must be a real boolean ------------------------------------------------------------------
@pytest.mark.parametrize("enabled", ["false", "true", 1, None])
def test_state_api__enabled_not_a_boolean__400_and_unchanged(api, users, envs, make_flag, enabled):
    make_flag("f")
    response = api(users["ops"]).patch("/api/v1/flags/f/environments/staging/", {"enabled": enabled}, format="json")
    assert response.status_code == 400 and "enabled must be true or false" in response.json()["detail"]
    assert _state("f", "staging").enabled is False


# --- 14. the admin's copy preview only shows environments the user can see ----------------------------------
def test_admin_copy_preview__source_environment_not_visible__refused_and_not_shown(client, users, envs, make_flag):
    flag = make_flag("f", enabled={"production": True}, strategies={"production": [
        {"name": "userWithId", "parameters": {"userIds": "secret-ceo-id"}, "constraints": []}]})
    client.force_login(users["dev"])
    url = reverse("admin:flags_featureflag_state", args=[flag.pk, "development"])
    response = client.post(url, {"action": "copy-preview", "source": "production"})
    assert response.status_code == 403 and b"secret-ceo-id" not in response.content
    page = client.get(url)
    assert "production" not in [env.name for env in page.context["environments"]]


# --- 15. admin validation errors on the form; approval policy audited -----------------------------------------
def test_flag_admin__invalid_tags__form_error_not_403(client, users, envs, make_flag):
    flag = make_flag("f")
    client.force_login(users["ops"])
    response = client.post(reverse("admin:flags_featureflag_change", args=[flag.pk]), {
        "description": "", "type": "release", "owner": "", "tags": '"abc"', "lifecycle": "initial", "parent": "",
        "parent_enabled": "on", "parent_variants": "[]", "monitoring_metrics": "[]", "monitoring_alerts": "[]"})
    assert response.status_code == 200 and "tags must be a list of non-empty strings" in response.content.decode()
    assert FeatureFlag.objects.get(pk=flag.pk).tags == []


def test_approval_policy_admin__save__through_audited_service(client, users, envs):
    client.force_login(users["admin"])
    client.post(reverse("admin:flags_approvalpolicy_add"), {"environment": envs["staging"].pk,
                                                            "require_approval": "on"})
    assert ApprovalPolicy.objects.get().require_approval is True
    event = AuditEvent.objects.get(action="flag.approval_policy.set")
    assert event.after == {"environment": "staging", "require_approval": True}


def test_approval_policy_set__without_administrative_access__permission_denied(users, envs):
    with pytest.raises(errors.PermissionDenied, match="administrative access"):
        services.approval_policy_set(environment=envs["production"], require_approval=False, by=users["dev"])
    assert not ApprovalPolicy.objects.exists()


def test_flag_admin__developer_archives_flag_on_in_production__form_error_and_unchanged(client, users, envs,
                                                                                         make_flag):
    flag = make_flag("f", enabled={"production": True})
    client.force_login(users["dev"])
    response = client.post(reverse("admin:flags_featureflag_change", args=[flag.pk]), {
        "description": "", "type": "release", "owner": "", "tags": "[]", "lifecycle": "archived", "parent": "",
        "parent_enabled": "on", "parent_variants": "[]", "monitoring_metrics": "[]", "monitoring_alerts": "[]"})
    assert response.status_code == 200 and "needs full access there" in response.content.decode()
    assert FeatureFlag.objects.get(pk=flag.pk).lifecycle != "archived"


# --- snapshots: a version token is published only once committed ------------------------------------------------
def test_snapshots_bump__inside_open_transaction__published_only_on_commit(envs, django_capture_on_commit_callbacks):
    scope = snapshots.env_scope(envs["staging"].pk)
    snapshots.get(envs["staging"].pk)
    published = snapshots.read_published(scope)
    with django_capture_on_commit_callbacks(execute=True):
        token = snapshots.bump(scope)
        assert snapshots.read_published(scope) == published
    assert snapshots.read_published(scope) == token


def test_snapshots_get__rebuilt_from_a_read_older_than_the_published_token__does_not_republish_it(envs, monkeypatch):
    env = envs["staging"]
    scope = snapshots.env_scope(env.pk)
    old = snapshots.get(env.pk)
    snapshots.reset()
    new = snapshots.bump(scope)
    snapshots.publish(scope, new)
    monkeypatch.setattr(snapshots, "_build", lambda environment_id: old)  # its database read predates the edit
    snapshots.get(env.pk)
    assert snapshots.read_published(scope) == new


def test_snapshots_publish_if_absent__newer_token_published__reader_never_overwrites(settings, tmp_path):
    from flags import snapshots

    settings.VAR_DIR = tmp_path
    snapshots.publish("env:99", "newer")
    snapshots.publish_if_absent("env:99", "older")
    assert snapshots.read_published("env:99") == "newer"
    snapshots.publish_if_absent("env:98", "first")
    assert snapshots.read_published("env:98") == "first"
