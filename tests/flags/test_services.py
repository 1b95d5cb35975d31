"""Flag services: validation, rollouts, ramps, approvals, copy, import/export, keys, stale flags."""
import datetime as dt
import io
import json

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from flags import services, snapshots
from flags.engine import Snapshot
from flags.models import (
    ApiKey,
    ApprovalPolicy,
    ChangeStatus,
    FeatureFlag,
    FlagEnvironment,
    GradualRollout,
    RampStatus,
    Segment,
)
from flags.tasks import advance_ramps
from pmrelease import delivery, errors
from pmrelease.models import AuditEvent, Notification

pytestmark = pytest.mark.django_db


def _state(key, env):
    return FlagEnvironment.objects.select_related("flag", "environment").get(flag__key=key, environment__name=env)


@pytest.mark.parametrize("strategies, message", [
    ([{"name": "flexibleRollout", "parameters": {"rollout": "150"}}], "rollout '150' must be between 0 and 100"),
    ([{"name": "nope"}], "unknown strategy 'nope'"),
    ([{"name": "default", "constraints": [{"contextName": "plan", "operator": "LIKE", "values": ["x"]}]}],
     "unknown operator 'LIKE'"),
    ([{"name": "default", "constraints": [{"contextName": "v", "operator": "SEMVER_GT", "value": "v1.2"}]}],
     "not a valid semantic version"),
    ([{"name": "default", "constraints": [{"contextName": "ip", "operator": "IN_CIDR", "values": ["10.0.0.0/99"]}]}],
     "not a valid IP address or CIDR range"),
    ([{"name": "default", "segments": [99999]}], "segment 99999 does not exist"),
])
def test_flag_state_update__invalid_strategy_or_constraint__refused_with_message(make_flag, envs, strategies, message):
    flag = make_flag("checkout")
    state = services.state_for(flag, envs["staging"])
    with pytest.raises(errors.ValidationFailed) as refused:
        services.flag_state_update(state=state, strategies=strategies)
    assert message in str(refused.value.message)
    assert _state("checkout", "staging").strategies == []


def test_flag_state_update__invalid_variants__refused_with_message(make_flag, envs):
    state = services.state_for(make_flag("theme"), envs["staging"])
    with pytest.raises(errors.ValidationFailed, match="payload is not valid JSON"):
        services.flag_state_update(state=state, variants=[
            {"name": "a", "weightType": "variable", "payload": {"type": "json", "value": "{oops"}}])


def test_flag_create__bad_key_or_duplicate__refused(make_flag):
    with pytest.raises(errors.ValidationFailed):
        services.flag_create(key="no spaces please")
    make_flag("dup")
    with pytest.raises(errors.ValidationFailed, match="already exists"):
        services.flag_create(key="dup")


def test_flag_create__developer__off_in_every_environment_and_audited(users, envs):
    flag = services.flag_create(key="search-v2", by=users["dev"])
    assert FlagEnvironment.objects.filter(flag=flag, enabled=False).count() == len(envs)
    assert AuditEvent.objects.filter(action="flag.create", actor_username="dev").exists()


def test_flag_state_update__developer_on_staging__permission_denied(make_flag, users, envs):
    state = services.state_for(make_flag("x"), envs["staging"])
    with pytest.raises(errors.PermissionDenied, match="full"):
        services.flag_toggle(state=state, enabled=True, by=users["dev"])
    services.flag_toggle(state=services.state_for(state.flag, envs["development"]), enabled=True, by=users["dev"])


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


def test_flag_state_update__stale_state_object__merges_onto_the_fresh_row(envs, make_flag):
    make_flag("f")
    first, second = _state("f", "staging"), _state("f", "staging")
    services.flag_state_update(state=first, enabled=True)
    services.flag_state_update(state=second, variants=[
        {"name": "a", "weight": 1000, "weightType": "variable", "stickiness": "default"}])
    state = _state("f", "staging")
    assert state.enabled is True and len(state.variants) == 1


# --- flag_set_rollout (the deployment engine's interface) ---------------------------------------------------
def test_flag_set_rollout__system__percentage_set_enabled_and_audited_as_system(make_flag, envs):
    make_flag("new-checkout")
    state = services.flag_set_rollout(environment=envs["production"], key="new-checkout", percentage=25)
    assert isinstance(state, FlagEnvironment) and state.enabled
    assert state.strategies[0]["name"] == "flexibleRollout" and state.strategies[0]["parameters"]["rollout"] == "25"
    event = AuditEvent.objects.filter(action="flag.rollout.set").latest("id")
    assert event.actor_username == "system" and event.object_id == str(state.pk)
    state = services.flag_set_rollout(environment="production", key="new-checkout", percentage=60, reason="deploy 7")
    assert len(state.strategies) == 1 and state.strategies[0]["parameters"]["rollout"] == "60"
    assert snapshots.get(envs["production"].pk).snapshot.feature("new-checkout").enabled


def test_flag_set_rollout__zero__keeps_enabled_state_and_rolls_to_zero(make_flag, envs):
    make_flag("f", enabled={"staging": True})
    state = services.flag_set_rollout(environment=envs["staging"], key="f", percentage=0)
    assert state.strategies[0]["parameters"]["rollout"] == "0"
    assert not snapshots.get(envs["staging"].pk).snapshot.is_enabled("f", {"userId": "1"})


def test_flag_set_rollout__keeps_constraints_of_the_existing_rollout_strategy(make_flag, envs):
    constraint = {"contextName": "plan", "operator": "IN", "values": ["pro"]}
    make_flag("f", strategies={"staging": [{"name": "flexibleRollout", "parameters": {"rollout": "5"},
                                            "constraints": [constraint]}]})
    state = services.flag_set_rollout(environment=envs["staging"], key="f", percentage=50)
    assert state.strategies[0]["constraints"] == [constraint]


@pytest.mark.parametrize("key, env, percentage", [("missing", "staging", 10), ("f", "nowhere", 10), ("f", "staging", 101),
                                                   ("f", "staging", -1), ("f", "staging", "50"), ("f", "staging", 2.5)])
def test_flag_set_rollout__unknown_flag_env_or_bad_percentage__validation_failed(make_flag, key, env, percentage):
    make_flag("f")
    with pytest.raises(errors.ValidationFailed):
        services.flag_set_rollout(environment=env, key=key, percentage=percentage)


def test_flag_set_rollout__person_where_approval_required__approval_required(users, envs, make_flag):
    make_flag("f")
    with pytest.raises(services.ApprovalRequired):
        services.flag_set_rollout(environment=envs["production"], key="f", percentage=10, by=users["ops"])
    assert not _state("f", "production").enabled
    # the system (deployment engine) is not subject to the policy
    assert services.flag_set_rollout(environment=envs["production"], key="f", percentage=10).enabled


def test_set_flag_rollout_hook__deployment_engine__provided_by_flags_and_applied_as_system(make_flag, envs, users):
    from releases.deploy import hooks

    make_flag("f")
    services.ApprovalPolicy.objects.create(environment=envs["staging"], require_approval=True)
    state = hooks.set_flag_rollout(environment=envs["staging"], key="f", percentage=40, reason="deployment 7")
    assert state.enabled and state.strategies[0]["parameters"]["rollout"] == "40"
    event = AuditEvent.objects.filter(action="flag.rollout.set").latest("id")
    assert event.actor_username == "system" and event.reason == "deployment 7"


# --- gradual ramps -------------------------------------------------------------------------------------------
def test_ramp__steps_on_schedule__applied_by_the_beat_task_when_due(make_flag, envs, monkeypatch):
    make_flag("search")
    state = _state("search", "staging")
    start = timezone.now()
    ramp = services.ramp_start(state=state, steps="10, 50@60, 100@120", now=start)
    assert ramp.current_percentage == 10 and _state("search", "staging").enabled

    def at(moment):
        monkeypatch.setattr(timezone, "now", lambda: moment)
        advance_ramps()
        return GradualRollout.objects.get(pk=ramp.pk)

    assert at(start + dt.timedelta(minutes=59)).current_percentage == 10  # not due yet
    assert at(start + dt.timedelta(minutes=60)).current_percentage == 50
    assert at(start + dt.timedelta(minutes=61)).current_percentage == 50  # redelivered: nothing more
    done = at(start + dt.timedelta(minutes=180))
    assert done.current_percentage == 100 and done.status == RampStatus.COMPLETED
    assert _state("search", "staging").strategies[0]["parameters"]["rollout"] == "100"
    steps = AuditEvent.objects.filter(action="flag.ramp.step").values_list("actor_username", flat=True)
    assert list(steps) == ["system"] * 3


def test_ramp__pause_resume_revert__audited_and_stop_the_schedule(make_flag, envs, users, monkeypatch):
    make_flag("search", enabled={"staging": True})
    start = timezone.now()
    ramp = services.ramp_start(state=_state("search", "staging"), steps="20, 60@10", now=start, by=users["ops"])
    services.ramp_pause(ramp=ramp, by=users["ops"], reason="error rate up")
    monkeypatch.setattr(timezone, "now", lambda: start + dt.timedelta(minutes=30))
    advance_ramps()
    assert GradualRollout.objects.get(pk=ramp.pk).current_percentage == 20
    with pytest.raises(errors.TransitionNotAllowed):
        services.ramp_pause(ramp=ramp, by=users["ops"])
    ramp = services.ramp_resume(ramp=ramp, by=users["ops"], now=start + dt.timedelta(minutes=30))
    assert ramp.next_step_at == start + dt.timedelta(minutes=40)
    services.ramp_revert(ramp=ramp, by=users["ops"], reason="rollback")
    state = _state("search", "staging")
    assert state.enabled and state.strategies == [] and state.rollout == "immediate"
    actions = set(AuditEvent.objects.filter(action__startswith="flag.ramp").values_list("action", flat=True))
    assert {"flag.ramp.start", "flag.ramp.pause", "flag.ramp.resume", "flag.ramp.revert"} <= actions


def test_ramp_action__current_ramp_by_name__applied_and_unknown_or_missing_refused(make_flag, envs, users):
    make_flag("search", enabled={"staging": True})
    with pytest.raises(errors.TransitionNotAllowed, match="no gradual rollout"):
        services.ramp_action(state=_state("search", "staging"), action="pause", by=users["ops"])
    ramp = services.ramp_start(state=_state("search", "staging"), steps="20, 60@10", by=users["ops"])
    with pytest.raises(errors.ValidationFailed, match="unknown ramp action 'stop'"):
        services.ramp_action(state=_state("search", "staging"), action="stop", by=users["ops"])
    paused = services.ramp_action(state=_state("search", "staging"), action="pause", by=users["ops"], reason="why")
    assert paused.pk == ramp.pk and paused.status == RampStatus.PAUSED
    services.ramp_action(state=_state("search", "staging"), action="revert", by=users["ops"])
    assert services.current_ramp(_state("search", "staging")) is None


@pytest.mark.parametrize("steps", ["", "50, 10@5", "10@-1", "abc", "120"])
def test_ramp_start__bad_steps__refused_with_message(make_flag, envs, steps):
    make_flag("s")
    with pytest.raises(errors.ValidationFailed):
        services.ramp_start(state=_state("s", "staging"), steps=steps)


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


# --- approvals, copy ---------------------------------------------------------------------------------------------
def test_production_change__needs_second_person__proposed_then_approved(make_flag, envs, users):
    make_flag("pay")
    state = _state("pay", "production")
    with pytest.raises(services.ApprovalRequired):
        services.flag_toggle(state=state, enabled=True, by=users["ops"])
    change = services.change_request_create(state=state, enabled=True, by=users["ops"], reason="launch")
    assert not _state("pay", "production").enabled
    with pytest.raises(errors.PermissionDenied, match="separation of duties"):
        services.change_request_decide(change=change, by=users["ops"], approve=True)
    other_ops = users["admin"]
    change = services.change_request_decide(change=change, by=other_ops, approve=True)
    assert change.status == ChangeStatus.APPLIED and _state("pay", "production").enabled


def test_flag_state_change__person_where_approval_required__proposed_and_not_applied(make_flag, envs, users):
    make_flag("pay")
    state, change = services.flag_state_change(state=_state("pay", "production"), enabled=True, by=users["ops"],
                                               reason="launch")
    assert change is not None and change.status == ChangeStatus.PENDING and change.reason == "launch"
    assert change.proposed["enabled"] is True and change.base["enabled"] is False
    assert change.requested_by == users["ops"] and not _state("pay", "production").enabled
    assert AuditEvent.objects.filter(action="flag.change.propose", actor_username="ops").count() == 1


def test_flag_state_change__no_approval_needed_or_system__applied_without_change_request(make_flag, envs, users):
    make_flag("pay")
    state, change = services.flag_state_change(state=_state("pay", "staging"), enabled=True, by=users["ops"])
    assert change is None and state.enabled
    state, change = services.flag_state_change(state=_state("pay", "production"), enabled=True)
    assert change is None and state.enabled
    assert not services.FlagChangeRequest.objects.exists()


def test_flag_rollout_change__person_in_production__rollout_proposed_with_the_reason_given(make_flag, envs, users):
    make_flag("pay")
    state, change = services.flag_rollout_change(state=_state("pay", "production"), percentage=30, by=users["ops"])
    assert change.proposed["enabled"] is True and change.proposed["rollout"] == "percentage"
    assert change.proposed["strategies"][0]["parameters"]["rollout"] == "30" and change.reason == ""
    assert not _state("pay", "production").enabled
    state, change = services.flag_rollout_change(state=_state("pay", "staging"), percentage=30, by=users["ops"])
    assert change is None and state.strategies[0]["parameters"]["rollout"] == "30"
    assert AuditEvent.objects.filter(action="flag.rollout.set").latest("id").reason == "rollout set to 30%"


def test_flag_state_edit__strategies_edited_by_hand__rollout_custom_otherwise_kept(make_flag, envs, users):
    make_flag("f")
    services.apply_rollout(state=_state("f", "staging"), kind="percentage", percentage=10)
    strategies = _state("f", "staging").strategies
    state, change = services.flag_state_edit(state=_state("f", "staging"), enabled=True, strategies=strategies,
                                             variants=[{"name": "a", "weightType": "variable"}])
    assert change is None and state.rollout == "percentage" and state.variants[0]["name"] == "a"
    state, _ = services.flag_state_edit(state=state, enabled=True, strategies=[{"name": "default"}], variants=[])
    assert state.rollout == "custom"
    _, change = services.flag_state_edit(state=_state("f", "production"), enabled=True,
                                         strategies=[{"name": "default"}], variants=[], by=users["ops"], propose=True)
    assert change.proposed["rollout"] == "custom" and not _state("f", "production").enabled
    with pytest.raises(services.ApprovalRequired):
        services.flag_state_edit(state=_state("f", "production"), enabled=True, strategies=[], variants=[],
                                 by=users["ops"])


def test_flag_copy_config__staging_to_production__diff_then_copy(make_flag, envs, users):
    strategies = [{"name": "flexibleRollout", "parameters": {"rollout": "30", "stickiness": "default", "groupId": "c"},
                   "constraints": []}]
    make_flag("c", enabled={"staging": True}, strategies={"staging": strategies})
    source, target = _state("c", "staging"), _state("c", "production")
    diff = services.config_diff(source, target)
    assert [d[0] for d in diff] == ["enabled", "strategies"]
    services.ApprovalPolicy.objects.create(environment=envs["production"], require_approval=False)
    services.flag_copy_config(source=source, target=target, by=users["ops"])
    assert _state("c", "production").strategies == strategies and _state("c", "production").enabled
    assert services.config_diff(source, _state("c", "production")) == []


def test_evaluate_as__explains_which_strategy_and_constraint_decided(make_flag, envs):
    make_flag("e", enabled={"staging": True}, strategies={"staging": [
        {"name": "default", "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}]})
    flag = FeatureFlag.objects.get(key="e")
    yes = services.evaluate_as(flag=flag, environment=envs["staging"], context={"properties": {"plan": "pro"}})
    no = services.evaluate_as(flag=flag, environment=envs["staging"], context={"properties": {"plan": "free"}})
    assert yes.enabled and yes.strategy_name == "default"
    assert not no.enabled and "plan" in no.explanation


def test_approval_policy_set__without_administrative_access__permission_denied(users, envs):
    with pytest.raises(errors.PermissionDenied, match="administrative access"):
        services.approval_policy_set(environment=envs["production"], require_approval=False, by=users["dev"])
    assert not ApprovalPolicy.objects.exists()


# --- segments -----------------------------------------------------------------------------------------------------
def test_segment_delete__referenced_by_a_flag__refused_naming_the_flag(used_segment):
    segment = used_segment
    with pytest.raises(errors.ValidationFailed, match="f @ staging"):
        services.segment_delete(segment=segment)
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_segment_delete__unused__deleted_bumped_and_audited(envs):
    segment = services.segment_save(name="unused", constraints=[])
    version = snapshots._db_version(snapshots.env_scope(envs["staging"].pk))
    services.segment_delete(segment=segment)
    assert not Segment.objects.exists()
    assert snapshots._db_version(snapshots.env_scope(envs["staging"].pk))[0] == version[0] + 1
    assert AuditEvent.objects.filter(action="flag.segment.delete").exists()


# --- API keys ----------------------------------------------------------------------------------------------------
def test_create_api_key__command__prints_key_once_and_stores_only_its_hash(envs):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "--environment", "staging", "--kind", "frontend", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    key = ApiKey.objects.get()
    assert key.key_hash == ApiKey.hash(raw) and raw not in json.dumps(list(ApiKey.objects.values()), default=str)
    assert snapshots.lookup_key(raw).environment_name == "staging"
    assert not AuditEvent.objects.filter(after__icontains=raw[-20:]).exists()
    with pytest.raises(CommandError, match="no environment"):
        call_command("create_api_key", "--environment", "mars", "--kind", "client", stdout=out)


# --- import / export ---------------------------------------------------------------------------------------------
UNLEASH_DOC = {
    "version": 2,
    "segments": [{"id": 7, "name": "eu-users", "constraints": [
        {"contextName": "region", "operator": "STR_STARTS_WITH", "values": ["eu-"]}]}],
    "features": [
        {"name": "parent", "type": "release", "enabled": True, "strategies": [{"name": "default"}]},
        {"name": "child", "type": "experiment", "enabled": True, "description": "depends on parent",
         "dependencies": [{"feature": "parent", "enabled": True}],
         "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "default",
                                                                   "groupId": "child"}, "segments": [7]}],
         "variants": [{"name": "a", "weight": 500, "weightType": "variable", "stickiness": "default"},
                      {"name": "b", "weight": 500, "weightType": "variable", "stickiness": "default",
                       "payload": {"type": "number", "value": "3"}}]},
    ],
}


def test_import_flags__unleash_document__engine_results_identical_and_export_round_trips(envs, tmp_path):
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(UNLEASH_DOC))
    out = io.StringIO()
    call_command("import_flags", "--environment", "staging", "--format", "unleash", str(path), stdout=out)
    assert "2 flag(s) were created: parent, child" in out.getvalue()

    theirs = Snapshot.from_client_features(UNLEASH_DOC)
    ours = snapshots.get(envs["staging"].pk).snapshot
    for user in range(200):
        ctx = {"userId": str(user), "properties": {"region": "eu-west" if user % 2 else "us-east"}}
        for name in ("parent", "child"):
            assert ours.get_variant(name, ctx) == theirs.get_variant(name, ctx)
    exported = io.StringIO()
    call_command("export_flags", "--environment", "staging", stdout=exported)
    again = Snapshot.from_client_features(json.loads(exported.getvalue()))
    assert again.get_variant("child", {"userId": "3", "properties": {"region": "eu-1"}}) == theirs.get_variant(
        "child", {"userId": "3", "properties": {"region": "eu-1"}})
    report = services.flags_import(environment=envs["staging"], doc=json.loads(exported.getvalue()))
    assert sorted(report.unchanged) == ["child", "parent"] and not report.created and not report.changed


def test_import_flags__not_an_unleash_document__nothing_imported_and_every_problem_listed(envs, tmp_path):
    doc = json.loads(json.dumps(UNLEASH_DOC))
    doc["features"][0]["strategies"] = "default"
    doc["features"][1]["enabled"] = "yes"
    doc["features"].append({"description": "no name"})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(CommandError) as failed:
        call_command("import_flags", "--environment", "staging", str(path))
    message = str(failed.value)
    assert "feature 'parent': strategies must be a list" in message
    assert "feature 'child': enabled must be true or false" in message and "features[2]: needs a name" in message
    assert not FeatureFlag.objects.exists() and not Segment.objects.exists()


def test_import_flags__constructs_that_never_match__kept_as_given_with_warnings(envs, tmp_path):
    doc = json.loads(json.dumps(UNLEASH_DOC))
    doc["features"][0]["strategies"] = [{"name": "flexibleRollout", "parameters": {"rollout": "abc"}}]
    doc["features"][1]["type"] = "weird"
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(doc))
    out = io.StringIO()
    call_command("import_flags", "--environment", "staging", str(path), stdout=out)
    assert "rollout 'abc' is not a number" in out.getvalue()
    exported = services.transfer.export_document(envs["staging"])["features"]
    assert sorted(exported, key=lambda f: f["name"]) == sorted(doc["features"], key=lambda f: f["name"])


def test_flags_import__person_without_full_access__permission_denied_and_nothing_imported(envs, users):
    with pytest.raises(errors.PermissionDenied):
        services.flags_import(environment=envs["staging"], doc=UNLEASH_DOC, by=users["dev"])
    assert not FeatureFlag.objects.exists() and not services.Segment.objects.exists()


def test_flags_import__person_where_approval_required__flags_created_states_proposed(envs, users):
    report = services.flags_import(environment=envs["production"], doc=UNLEASH_DOC, by=users["ops"])
    assert report.created == ["parent", "child"] and report.proposed == ["parent", "child"]
    assert report.segments_created == ["eu-users"]
    assert not FlagEnvironment.objects.filter(environment=envs["production"], enabled=True).exists()
    changes = services.FlagChangeRequest.objects.filter(state__environment=envs["production"], status="pending")
    assert {c.state.flag.key for c in changes} == {"parent", "child"}
    assert all(c.proposed["enabled"] and c.requested_by == users["ops"] for c in changes)
    assert FeatureFlag.objects.get(key="child").dependencies == [{"feature": "parent", "enabled": True}]


def test_flags_import__person_with_full_access__applied_and_audited_as_that_person(envs, users):
    report = services.flags_import(environment=envs["staging"], doc=UNLEASH_DOC, by=users["ops"])
    assert report.proposed == [] and _state("child", "staging").enabled
    assert _state("child", "staging").strategies[0]["segments"] == [services.Segment.objects.get().pk]
    assert AuditEvent.objects.get(action="flag.import").actor_username == "ops"


def test_flags_import__a_later_step_fails__nothing_imported(envs, monkeypatch):
    real = services._change

    def failing_on_child(state, build, **kwargs):
        if state.flag.key == "child":
            raise errors.ValidationFailed("refused")
        return real(state, build, **kwargs)

    monkeypatch.setattr(services, "_change", failing_on_child)
    with pytest.raises(errors.ValidationFailed, match="refused"):
        services.flags_import(environment=envs["staging"], doc=UNLEASH_DOC, by="import_flags")
    assert not FeatureFlag.objects.exists() and not services.Segment.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="flag.").exists()


# --- stale flags ---------------------------------------------------------------------------------------------
def test_stale_flags__past_lifetime_or_unused__listed_and_owner_notified_once(make_flag, users, envs):
    old = timezone.now() - dt.timedelta(days=45)
    make_flag("old-release", owner=users["dev"])
    FeatureFlag.objects.filter(key="old-release").update(created_at=old)
    make_flag("kill", type="kill-switch")
    FeatureFlag.objects.filter(key="kill").update(created_at=old)
    FlagEnvironment.objects.filter(flag__key="kill", environment=envs["production"]).update(
        last_seen_at=timezone.now())
    make_flag("fresh")
    stale = {flag.key: reasons for flag, reasons in services.stale_flags()}
    assert set(stale) == {"old-release"}
    assert any("expected lifetime" in r for r in stale["old-release"])
    assert any("not evaluated" in r for r in stale["old-release"])
    assert services.notify_stale_flags() == 1
    [pk] = Notification.objects.filter(event="flag.stale", channel=None).values_list("pk", flat=True)
    assert delivery.send(notification_id=pk) == "delivered"  # the worker's part (pmrelease.delivery)
    assert mail.outbox[-1].to == ["dev@example.com"] and "old-release" in mail.outbox[-1].body
    assert services.notify_stale_flags() == 0


# --- lossless import --------------------------------------------------------------------------------------------
def test_flags_import__dry_run__plan_of_created_changed_unchanged_and_nothing_written(envs, make_flag):
    make_flag("same", enabled={"staging": True})
    make_flag("other", enabled={"staging": False})
    doc = services.transfer.export_document(envs["staging"])
    doc["features"] = [f for f in doc["features"] if f["name"] in ("same", "other")]
    next(f for f in doc["features"] if f["name"] == "other")["enabled"] = True
    doc["features"].append({"name": "new-one", "enabled": True, "strategies": [], "variants": [
        {"name": "v", "weight": 1000, "payload": {"type": "string", "value": "AKIAIOSFODNN7EXAMPLE"}}]})
    audit_rows = AuditEvent.objects.count()
    report = services.flags_import(environment=envs["staging"], doc=doc, by="import_flags", dry_run=True)
    assert (report.created, report.changed, report.unchanged) == (["new-one"], ["other"], ["same"])
    assert any("looks like it holds a secret (AWS Access Key)" in w for w in report.warnings)
    assert not FeatureFlag.objects.filter(key="new-one").exists() and not _state("other", "staging").enabled
    assert AuditEvent.objects.count() == audit_rows
    applied = services.flags_import(environment=envs["staging"], doc=doc, by="import_flags")
    assert (applied.created, applied.changed, applied.unchanged) == (["new-one"], ["other"], ["same"])
    assert _state("other", "staging").enabled
    assert _state("new-one", "staging").variants[0]["payload"]["value"] == "AKIAIOSFODNN7EXAMPLE"  # kept, warned


def test_flags_import__variant_weights_as_given__nobody_moves(envs):
    variants = [{"name": f"v{i}", "weight": 33, "payload": {"type": "string", "value": str(i)}} for i in range(3)]
    doc = {"version": 1, "features": [{"name": "experiment", "enabled": True, "strategies": [], "variants": variants}]}
    services.flags_import(environment=envs["staging"], doc=doc, by="import_flags")
    assert _state("experiment", "staging").variants == variants  # not 334/333/333
    theirs = Snapshot.from_client_features(doc)
    ours = snapshots.get(envs["staging"].pk).snapshot
    assert all(ours.get_variant("experiment", {"userId": str(u)}) == theirs.get_variant("experiment", {
        "userId": str(u)}) for u in range(300))


def test_flags_import__portal_flags_exported_then_imported__unchanged(envs, make_flag):
    make_flag("portal-made", enabled={"staging": True}, variants={"staging": [
        {"name": "a", "weightType": "variable"}, {"name": "b", "weightType": "variable"}]})
    exported = services.transfer.export_document(envs["staging"])
    report = services.flags_import(environment=envs["staging"], doc=exported, by="import_flags")
    assert report.unchanged == ["portal-made"] and not report.changed
    assert FeatureFlag.objects.get(key="portal-made").unleash == {}


def test_flag_state_edit__payload_changed__weights_kept_so_nobody_moves(envs, make_flag):
    make_flag("exp", enabled={"staging": True}, variants={"staging": [
        {"name": "a", "weightType": "variable"}, {"name": "b", "weightType": "variable"},
        {"name": "c", "weightType": "variable"}]})
    state = _state("exp", "staging")
    assert [v["weight"] for v in state.variants] == [334, 333, 333]  # computed once, when edited
    edited = [dict(v, payload={"type": "string", "value": "x"}) if v["name"] == "a" else v for v in state.variants]
    services.flag_state_update(state=state, variants=edited)
    assert [v["weight"] for v in _state("exp", "staging").variants] == [334, 333, 333]
    services.flag_state_update(state=_state("exp", "staging"), variants=edited[:2])
    assert [v["weight"] for v in _state("exp", "staging").variants] == [500, 500]  # the weighting changed
