"""The deployment engine on the simulation backend, driven step by step as the worker would."""
import datetime as dt

import pytest

from pmrelease import errors
from pmrelease.models import AuditEvent
from releases import selectors
from releases.deploy import engine, gates
from releases.deploy import services as deployments
from releases.models import (
    Deployment,
    DeploymentStep,
    DeploymentTarget,
    GateResult,
    HealthCheck,
    Release,
)
from tests.factories import covering_change

pytestmark = pytest.mark.django_db


def deploy(release, env, users, **kw):
    """Start a deployment; where the environment requires a change (production, dr), one covers it."""
    from changes import services as changes

    kw.setdefault("strategy", "rolling-update")
    if changes.requires_change(env) and not changes.covering_changes(release, env).exists():
        covering_change(release, env, by=users["planner"], approver=users["approver2"])
    return deployments.deployment_create(release=release, environment=env, by=users["ops"], dispatch=False, **kw)


def run(dep):
    return engine.run_inline(dep.pk)


def state(envs, name):
    return DeploymentTarget.objects.get(environment=envs[name]).state


def report_all(dep, users, failed=()):
    for gate in dep.environment.testing_gates.all():
        deployments.gate_report(deployment=dep, gate=gate, by=users["ops"], passed=10,
                                failed=1 if gate.name in failed else 0, dispatch=False)


def test_deployment__canary_on_simulation__succeeds_and_release_follows(users, envs, sim_targets, approved_release):
    release = approved_release()
    dep = deploy(release, envs["development"], users, strategy="canary", parameters={"pause": 0})
    assert dep.status == "running" and Release.objects.get(pk=release.pk).status == "deploying"
    dep = run(dep)
    assert dep.status == "succeeded"
    assert state(envs, "development")["version"] == release.version
    events = [e["event"] for e in state(envs, "development")["events"]]
    assert events == [f"canary {release.version} at 10%", f"canary {release.version} at 50%",
                      f"{release.version} promoted to 100%"]
    release.refresh_from_db()  # deployed as soon as it runs somewhere and nothing of it is running
    assert release.status == "deployed" and release.deployed_at is not None
    envs["development"].refresh_from_db()
    assert envs["development"].current_release == release and envs["development"].current_deployment == dep
    staging = deploy(release, envs["staging"], users)
    assert Release.objects.get(pk=release.pk).status == "deploying"  # while the staging deployment runs
    run(staging)
    run(deploy(release, envs["production"], users, strategy="blue-green", parameters={"scale_down_delay": 0}))
    release.refresh_from_db()
    assert release.status == "deployed"
    assert [env.name for env, _, _ in selectors.locations(release)] == ["development", "staging", "production"]


def test_deployment__every_step_recorded_with_times_and_log(users, envs, sim_targets, approved_release):
    dep = run(deploy(approved_release(), envs["development"], users, strategy="canary", parameters={"pause": 0}))
    for step in dep.steps.all():
        assert step.status == "succeeded" and step.started_at and step.finished_at and step.log, step


def test_deployment__production_before_staging__refused_with_rule(users, envs, sim_targets, approved_release):
    release = approved_release()
    run(deploy(release, envs["development"], users))
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        deploy(release, envs["production"], users)
    assert exc.value.reasons == ["production needs a successful deployment to staging first (promotion path)"]
    assert not Deployment.objects.filter(environment=envs["production"]).exists()


def test_deployment__staging_required_gate_failed__production_refused(users, envs, sim_targets, seed_gates,
                                                                     approved_release):
    release = approved_release()
    dev = deploy(release, envs["development"], users)
    report_all(dev, users)
    run(dev)
    staging = deploy(release, envs["staging"], users)
    report_all(staging, users, failed={"E2E Tests"})  # a warn gate: overridden, the others pass
    run(staging)
    assert staging.__class__.objects.get(pk=staging.pk).status == "awaiting_approval"
    deployments.gate_override(deployment=staging, gate=seed_gates["E2E Tests"], by=users["ops"],
                              reason="flaky on Safari, tracked in PM-88", dispatch=False)
    assert run(staging).status == "succeeded"
    assert deployments.promotion_refusals(release, envs["production"]) == []
    event = AuditEvent.objects.get(action="gate.override")
    assert event.reason == "flaky on Safari, tracked in PM-88" and event.actor_username == "ops"


def test_deployment__hotfix_skips_development_but_not_staging_gates(users, envs, sim_targets, seed_gates,
                                                                   approved_release):
    release = approved_release(type="hotfix")
    staging = deploy(release, envs["staging"], users)  # no development deployment: allowed for a hotfix
    report_all(staging, users, failed={"Security Tests"})
    staging = run(staging)
    assert staging.status == "rolled_back" and "Security Tests" in staging.failure_reason
    with pytest.raises(errors.TransitionNotAllowed):
        deploy(release, envs["production"], users)


def test_gates__blocking_gate_failed__deployment_stopped_and_rolled_back(users, envs, sim_targets, seed_gates,
                                                                        approved_release):
    release = approved_release()
    dev = deploy(release, envs["development"], users)
    report_all(dev, users, failed={"Unit Tests"})
    dev = run(dev)
    assert dev.status == "rolled_back"
    assert "blocking gate failed: Unit Tests (failed)" in dev.failure_reason
    assert Release.objects.get(pk=release.pk).status == "rolled_back"


def test_gates__ignore_gate_failed__recorded_only(users, envs, sim_targets, approved_release):
    gate = gates.ensure_gate(envs["development"], name="Lint", tests=["ruff"], required=False, timeout=5,
                                   on_failure="ignore")
    dep = deploy(approved_release(), envs["development"], users)
    deployments.gate_report(deployment=dep, gate=gate, by=users["ops"], passed=0, failed=3, dispatch=False)
    dep = run(dep)
    assert dep.status == "succeeded"
    assert dep.gate_results.get().status == "failed"


def test_gates__no_result_by_timeout__counts_as_failed(users, envs, sim_targets, seed_gates, approved_release):
    dep = deploy(approved_release(), envs["development"], users)
    run(dep)
    dep.refresh_from_db()
    gate_step = dep.steps.get(kind="gates")
    assert dep.status == "running" and gate_step.status == "waiting"
    DeploymentStep.objects.filter(pk=gate_step.pk).update(started_at=gate_step.started_at - dt.timedelta(minutes=11),
                                                          resume_at=None)
    dep = run(dep)
    assert dep.status == "rolled_back"
    assert GateResult.objects.get(deployment=dep).status == "timed_out"


def test_gates__warn_override__needs_access_and_reason(users, envs, sim_targets, seed_gates, approved_release):
    release = approved_release(type="hotfix")
    dep = deploy(release, envs["staging"], users)
    report_all(dep, users, failed={"Performance Tests"})
    run(dep)
    gate = seed_gates["Performance Tests"]
    with pytest.raises(errors.PermissionDenied):
        deployments.gate_override(deployment=dep, gate=gate, by=users["dev"], reason="x")
    with pytest.raises(errors.ValidationFailed):
        deployments.gate_override(deployment=dep, gate=gate, by=users["ops"], reason=" ")
    with pytest.raises(errors.PermissionDenied, match="only 'warn' gates"):
        deployments.gate_override(deployment=dep, gate=seed_gates["Security Tests"], by=users["ops"], reason="x")


def test_health_check__failing_at_canary_weight__automatic_rollback_restores_previous(users, envs, sim_targets,
                                                                                      approved_release):
    first = approved_release(version="1.0.0", type="major")
    run(deploy(first, envs["development"], users))
    second = approved_release(version="1.1.0")
    dep = deploy(second, envs["development"], users, strategy="canary",
                 parameters={"pause": 0, "simulate": {"fail_health_check_at_weight": 50}})
    assert dep.previous_version == "1.0.0"
    dep = run(dep)
    assert dep.status == "rolled_back"
    assert "Health checks at 50%" in dep.failure_reason and "injected failure" in dep.failure_reason
    assert state(envs, "development")["version"] == "1.0.0"
    assert [s.kind for s in dep.steps.filter(phase="rollback")] == ["rollback_step", "restore"]
    assert Release.objects.get(pk=second.pk).status == "rolled_back"
    actions = list(AuditEvent.objects.filter(object_type="releases.deployment", object_id=str(dep.pk))
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["deployment.create", "deployment.start", "deployment.fail", "deployment.abort",
                       "deployment.finish_rollback"]


def test_analysis__error_rate_breach__rolls_back(users, envs, sim_targets, approved_release):
    """The simulator measures its traffic into the builtin store; the analysis step judges the trigger there."""
    dep = deploy(approved_release(), envs["development"], users, strategy="canary",
                 parameters={"pause": 0, "simulate": {"error_rate_after_weight": {"weight": 50, "rate": 0.3}},
                             "rollback_triggers": [{"metric": "error_rate", "operator": ">", "threshold": 0.05}]})
    dep = run(dep)
    assert dep.status == "rolled_back"
    assert "rollback trigger fired: error_rate > 0.05 → rollback: error_rate > 0.05: breached" in dep.failure_reason
    analyses = dep.evaluations.filter(source="analysis").order_by("at", "id")
    assert [e.decision for e in analyses] == ["ok", "fired"]
    assert analyses[0].value == 0.004 and analyses[1].value > 0.05  # a bucket's mean of what was pushed


def test_http_health_check__real_server__failure_follows_rollback_plan(users, envs, sim_targets, approved_release,
                                                                       httpserver):
    httpserver.expect_request("/healthz").respond_with_data("down", status=503)
    HealthCheck.objects.create(environment=envs["development"], name="api", url=httpserver.url_for("/healthz"),
                               retries=2, interval=0.01, timeout=1)
    sim_targets["development"].config = {"simulation": {}}
    sim_targets["development"].save()
    # the simulator checks health itself unless told not to: use a script-free target that defers to HTTP
    DeploymentTarget.objects.filter(pk=sim_targets["development"].pk).update(backend="script", config={
        "commands": {"deploy": "true", "restore": "true"}})
    dep = run(deploy(approved_release(), envs["development"], users))
    assert dep.status == "rolled_back"
    assert "503 from" in dep.failure_reason and "after 2 attempt(s)" in dep.failure_reason


def test_one_deployment_per_environment__queue_policy__second_waits_then_runs(users, envs, sim_targets,
                                                                             approved_release):
    a = approved_release(version="1.0.0", type="major", envs=[envs["development"]])
    b = approved_release(version="1.1.0", envs=[envs["development"]])
    first = deploy(a, envs["development"], users, strategy="canary", parameters={"pause": None})
    second = deploy(b, envs["development"], users)
    assert first.status == "running" and second.status == "pending"
    assert second.waiting_for.startswith(f"its turn: deployment #{first.pk} (1.0.0) runs in development")
    for _ in range(2):  # two manual pauses: after 10% and after 50%
        assert run(first).status == "awaiting_approval"
        assert Deployment.objects.get(pk=second.pk).status == "pending"
        deployments.deployment_action(deployment=first, name="promote", by=users["ops"], dispatch=False)
    assert run(first).status == "succeeded"
    second.refresh_from_db()
    assert second.status == "running" and second.previous_version == "1.0.0"
    assert run(second).status == "succeeded"


def test_one_deployment_per_environment__refuse_policy__409(users, envs, sim_targets, approved_release):
    DeploymentTarget.objects.filter(environment=envs["development"]).update(concurrency="refuse")
    a = approved_release(version="1.0.0", type="major", envs=[envs["development"]])
    b = approved_release(version="1.1.0", envs=[envs["development"]])
    deploy(a, envs["development"], users)
    with pytest.raises(errors.TransitionNotAllowed, match="development is busy with deployment"):
        deploy(b, envs["development"], users)


def test_abort__running_canary__previous_version_restored(users, envs, sim_targets, approved_release):
    first = approved_release(version="1.0.0", type="major")
    run(deploy(first, envs["development"], users))
    dep = deploy(approved_release(version="1.1.0"), envs["development"], users, strategy="canary",
                 parameters={"pause": None})
    run(dep)
    assert state(envs, "development")["canary"] == {"version": "1.1.0", "weight": 10}
    with pytest.raises(errors.ValidationFailed):
        deployments.deployment_action(deployment=dep, name="abort", by=users["ops"], dispatch=False)
    deployments.deployment_action(deployment=dep, name="abort", by=users["ops"], reason="wrong build",
                                  dispatch=False)
    dep = run(dep)
    assert dep.status == "rolled_back" and state(envs, "development")["version"] == "1.0.0"
    assert state(envs, "development")["canary"] is None
    assert AuditEvent.objects.filter(action="deployment.abort", reason__contains="wrong build").exists()


def test_rollback__after_success__previous_version_restored(users, envs, sim_targets, approved_release):
    run(deploy(approved_release(version="1.0.0", type="major"), envs["development"], users))
    release = approved_release(version="1.1.0")
    dep = run(deploy(release, envs["development"], users))
    assert state(envs, "development")["version"] == "1.1.0"
    deployments.deployment_action(deployment=dep, name="rollback", by=users["ops"], reason="regression in billing",
                                  dispatch=False)
    dep = run(dep)
    assert dep.status == "rolled_back" and state(envs, "development")["version"] == "1.0.0"
    assert Release.objects.get(pk=release.pk).status == "rolled_back"


def test_pause_and_resume__running_deployment__waits_then_continues(users, envs, sim_targets, approved_release):
    dep = deploy(approved_release(), envs["development"], users, strategy="canary", parameters={"pause": 0})
    engine.advance(dep.pk, dispatch=False)
    deployments.deployment_action(deployment=dep, name="pause", by=users["ops"], dispatch=False)
    assert engine.advance(dep.pk, dispatch=False) == "nothing to do: deployment is paused"
    deployments.deployment_action(deployment=dep, name="resume", by=users["ops"], dispatch=False)
    assert run(dep).status == "succeeded"


def test_retry__failed_step_without_auto_rollback__runs_again(users, envs, sim_targets, approved_release):
    release = approved_release()
    sim_targets["development"].config = {"simulation": {"fail_deploy": True}}
    sim_targets["development"].save()
    dep = run(deploy(release, envs["development"], users, auto_rollback=False))
    assert dep.status == "failed" and Release.objects.get(pk=release.pk).status == "failed"
    sim_targets["development"].config = {}
    sim_targets["development"].save()
    deployments.deployment_action(deployment=dep, name="retry", by=users["ops"], dispatch=False)
    assert Release.objects.get(pk=release.pk).status == "deploying"
    dep = run(dep)
    assert dep.status == "succeeded" and dep.steps.get(kind="deploy").attempts == 2


@pytest.mark.parametrize(("action", "state_"), [("promote", "running"), ("resume", "running"),
                                                ("retry", "running"), ("rollback", "running")])
def test_actions__wrong_state__409(users, envs, sim_targets, approved_release, action, state_):
    dep = deploy(approved_release(), envs["development"], users)
    assert dep.status == state_
    with pytest.raises(errors.TransitionNotAllowed):
        deployments.deployment_action(deployment=dep, name=action, by=users["ops"], reason="r", dispatch=False)


def test_actions__developer_on_production__403(users, envs, sim_targets, approved_release):
    release = approved_release(type="hotfix")
    run(deploy(release, envs["staging"], users))
    dep = deploy(release, envs["production"], users)
    with pytest.raises(errors.PermissionDenied):
        deployments.deployment_action(deployment=dep, name="abort", by=users["dev"], reason="x")
    with pytest.raises(errors.PermissionDenied):
        deployments.deployment_create(release=release, environment=envs["production"], by=users["dev"])


def test_rollback_plan__step_fails_with_manual_intervention__waits_for_person(users, envs, sim_targets,
                                                                              approved_release):
    from tests.factories import ready_plan

    plan = ready_plan(rollback_steps=[
        {"order": 1, "description": "Disable flags", "verification": "flags off", "on_failure": "continue"},
        {"order": 2, "description": "Restore DB snapshot", "verification": "row counts", "on_failure":
         "manual_intervention"},
        {"order": 3, "description": "Purge CDN", "verification": "cache miss", "on_failure": "stop"}])
    release = approved_release(plan=plan)
    dep = deploy(release, envs["development"], users,
                 parameters={"simulate": {"fail_deploy": True, "fail_rollback_steps": [1, 2]}})
    dep = run(dep)
    assert dep.status == "awaiting_approval" and "Restore DB snapshot" in dep.waiting_for
    assert [s.status for s in dep.steps.filter(phase="rollback")] == ["failed", "failed", "pending", "pending"]
    deployments.deployment_action(deployment=dep, name="promote", by=users["ops"], reason="restored by hand",
                                  dispatch=False)
    dep = run(dep)
    assert dep.status == "rolled_back"
    assert [s.status for s in dep.steps.filter(phase="rollback")] == ["failed", "skipped", "succeeded", "succeeded"]


def test_rollback_plan__step_fails_with_stop__deployment_failed(users, envs, sim_targets, approved_release):
    release = approved_release()
    dep = run(deploy(release, envs["development"], users,
                     parameters={"simulate": {"fail_deploy": True, "fail_rollback_steps": [1]}}))
    assert dep.status == "failed" and dep.failure_reason.startswith("rollback stopped at step")


def test_redelivered_task__completed_step__no_duplicate_effect(users, envs, sim_targets, approved_release):
    dep = deploy(approved_release(), envs["development"], users, strategy="canary", parameters={"pause": 0})
    engine.advance(dep.pk, dispatch=False)  # canary 10% done
    first = dep.steps.get(position=1)
    assert first.status == "succeeded"
    # the same message delivered again is for the *current* step; the done one is never re-run
    engine.advance(dep.pk, dispatch=False)
    assert DeploymentStep.objects.get(pk=first.pk).attempts == 1
    assert len(state(envs, "development")["events"]) == 1


def test_worker_lost_mid_step__lease_expires__step_redone_without_duplicate(users, envs, sim_targets,
                                                                            approved_release):
    dep = deploy(approved_release(), envs["development"], users, strategy="canary", parameters={"pause": 0})
    step = dep.steps.get(position=1)
    # a worker claimed the step, did its side effect, and died before recording it
    DeploymentStep.objects.filter(pk=step.pk).update(status="running", attempts=1, lease_generation=1,
                                                     lease_holder="gone:1",
                                                     lease_until=engine._now() + dt.timedelta(seconds=60))
    Deployment.objects.filter(pk=dep.pk).update(heartbeat_at=engine._now() - dt.timedelta(seconds=5))  # its claim
    target = sim_targets["development"]
    target.state = {"canary": {"version": dep.release.version, "weight": 10}}
    target.save()
    assert engine.advance(dep.pk, dispatch=False) == "step is held by another worker"
    DeploymentStep.objects.filter(pk=step.pk).update(lease_until=engine._now() - dt.timedelta(seconds=1))
    report = engine.watchdog(dispatch=False)
    assert report["resumed"] == [dep.pk]
    engine.advance(dep.pk, dispatch=False)
    step.refresh_from_db()
    # the lost worker is not the step's fault: a worker loss, not a second attempt; the takeover is logged
    assert step.status == "succeeded" and step.attempts == 1 and step.worker_losses == 1
    assert step.lease_generation == 2
    assert "worker gone:1 lost (lease 1 ran out)" in step.log[0]["msg"]
    assert "already done" in step.log[1]["msg"]
    assert AuditEvent.objects.filter(action="deployment.step_takeover").count() == 1
    assert state(envs, "development").get("events", []) == []  # the re-run changed nothing
    assert run(dep).status == "succeeded"


def test_watchdog__worker_keeps_vanishing__deployment_failed_not_running_forever(users, envs, sim_targets,
                                                                               approved_release, monkeypatch):
    dep = deploy(approved_release(), envs["development"], users)
    step = dep.steps.get(position=1)

    def worker_dies(*args, **kwargs):
        raise SystemExit("kill -9")  # not an Exception: the step stays running with its lease, as after a kill

    monkeypatch.setattr(engine, "execute", worker_dies)
    failed = []
    for _ in range(4):  # each time a worker claims the step and vanishes
        with pytest.raises(SystemExit):
            engine.advance(dep.pk, dispatch=False)
        DeploymentStep.objects.filter(pk=step.pk).update(lease_until=engine._now() - dt.timedelta(seconds=1))
        Deployment.objects.filter(pk=dep.pk).update(heartbeat_at=None)
        failed += engine.watchdog(dispatch=False, max_worker_losses=3)["failed"]
        if failed:
            break
    assert failed == [dep.pk]
    step.refresh_from_db()
    assert step.attempts == 1 and step.worker_losses == 2  # one attempt, taken over twice, lost a third time
    dep.refresh_from_db()
    assert dep.status in ("rolling_back", "rolled_back", "failed")
    assert "lost its worker 3 times" in dep.failure_reason


def test_watchdog__handed_over_not_picked_up_yet__not_dispatched_again(users, envs, sim_targets, approved_release):
    dep = deploy(approved_release(), envs["development"], users)
    # claimed 11 s ago with a 10 s lease, never renewed: the worker vanished
    Deployment.objects.filter(pk=dep.pk).update(heartbeat_at=engine._now() - dt.timedelta(seconds=11))
    DeploymentStep.objects.filter(deployment=dep, position=1).update(
        status="running", lease_generation=1, lease_until=engine._now() - dt.timedelta(seconds=1))
    assert engine.watchdog(dispatch=False)["resumed"] == [dep.pk]
    assert engine.watchdog(dispatch=False)["resumed"] == []
    assert AuditEvent.objects.filter(action="deployment.watchdog_resume").count() == 1


def test_watchdog__due_timed_pause__woken(users, envs, sim_targets, approved_release):
    dep = deploy(approved_release(), envs["development"], users, strategy="canary", parameters={"pause": 30})
    engine.advance(dep.pk, dispatch=False)
    engine.advance(dep.pk, dispatch=False)
    assert engine.advance(dep.pk, dispatch=False) == "step waits"
    assert engine.advance(dep.pk, dispatch=False) == "step is waiting"
    assert engine.watchdog(dispatch=False)["resumed"] == []
    DeploymentStep.objects.filter(deployment=dep, kind="pause", status="waiting").update(
        resume_at=engine._now() - dt.timedelta(seconds=1))
    assert engine.watchdog(dispatch=False)["resumed"] == [dep.pk]


def test_feature_flag_strategy__without_flag_service__fails_cleanly_or_ramps(users, envs, sim_targets,
                                                                            approved_release):
    dep = run(deploy(approved_release(), envs["development"], users, strategy="feature-flag",
                     parameters={"flag": "does-not-exist", "pause": 0}))
    assert dep.status == "rolled_back"
    assert "flag does-not-exist" in dep.failure_reason or "flag_set_rollout" in dep.failure_reason


def test_deployment_create__invalid_strategy_parameters__400_nothing_stored(users, envs, sim_targets,
                                                                           approved_release):
    with pytest.raises(errors.ValidationFailed) as exc:
        deploy(approved_release(), envs["development"], users, strategy="canary", parameters={"steps": [90, 10]})
    assert "steps" in exc.value.field_errors["parameters"][0]
    assert not Deployment.objects.exists()


def test_deployment_create__planned_release__409(users, envs, sim_targets):
    from tests.factories import make_release

    release = make_release(by=users["dev"], envs=[envs["development"]])
    with pytest.raises(errors.TransitionNotAllowed, match="only approved"):
        deploy(release, envs["development"], users)


def test_deployment_create__no_target__400(users, envs, approved_release):
    with pytest.raises(errors.ValidationFailed, match="no deployment target"):
        deploy(approved_release(), envs["development"], users)


def test_feature_flag_strategy__real_flag__ramped_to_100_and_audited(users, envs, sim_targets, approved_release):
    from flags import services as flag_services
    from flags.models import FlagEnvironment

    flag = flag_services.flag_create(key="new-editor")
    flag_services.state_for(flag, envs["development"])
    dep = run(deploy(approved_release(), envs["development"], users, strategy="feature-flag",
                     parameters={"flag": "new-editor", "steps": [25, 100], "pause": 0}))
    assert dep.status == "succeeded", dep.failure_reason
    state_ = FlagEnvironment.objects.get(flag=flag, environment=envs["development"])
    config = state_.config()
    assert config["enabled"] is True
    assert any(s["name"] == "flexibleRollout" and s["parameters"]["rollout"] in ("100", 100)
               for s in config["strategies"])
    reasons = list(AuditEvent.objects.filter(action="flag.rollout.set").values_list("reason", flat=True))
    assert len(reasons) == 2 and all(f"deployment #{dep.pk}" in r for r in reasons)


def test_automatic_rollback_in_production__incident_draft_on_its_components(users, envs, sim_targets,
                                                                           approved_release):
    from monitoring.models import Component, Incident

    api = Component.objects.create(name="Sending API")
    api.environments.set([envs["production"]])
    Component.objects.create(name="Marketing site")
    release = approved_release(type="hotfix")
    run(deploy(release, envs["staging"], users))
    dep = run(deploy(release, envs["production"], users, strategy="canary",
                     parameters={"pause": 0, "simulate": {"fail_health_check_at_weight": 10}}))
    assert dep.status == "rolled_back"
    incident = Incident.objects.get()
    # public wording from the template; the engineering detail only in the internal notes
    assert incident.name == "Errors during an update of Sending API"
    body = incident.updates.get().body
    assert "rolled back automatically" in body and "restored" in body
    assert "injected" not in body and "healthz" not in body and release.version not in body
    assert f"Automatic rollback of {release.version} on production (deployment #{dep.pk})" in incident.internal_notes
    assert "injected failure" in incident.internal_notes
    assert incident.environment == envs["production"]
    # the rollback restored service: operational proposed for the linked component, nothing set
    assert incident.proposed_components == {str(api.pk): "operational"}
    assert not incident.components.exists()
    assert incident.deployment == dep  # DORA's change failure rate links them
    assert not incident.is_published  # the production policy is "draft": an operator publishes it


# --- the release's status tells the truth -----------------------------------------------------------------
def test_rollback_elsewhere__release_live_in_production__stays_deployed_and_may_go_to_dr(users, envs, sim_targets,
                                                                                        approved_release):
    """Rolling back the development deployment turned a release running in production into rolled_back,
    after which it could not go to dr."""
    release = approved_release(envs=[envs["development"], envs["staging"], envs["production"], envs["dr"]])
    development = run(deploy(release, envs["development"], users))
    run(deploy(release, envs["staging"], users))
    run(deploy(release, envs["production"], users))
    deployments.deployment_action(deployment=development, name="rollback", by=users["ops"], reason="dev data reset",
                                  dispatch=False)
    assert run(development).status == "rolled_back"
    release.refresh_from_db()
    assert release.status == "deployed"
    assert [env.name for env, _, _ in selectors.locations(release)] == ["staging", "production"]
    envs["development"].refresh_from_db()
    assert envs["development"].current_release is None and envs["development"].current_version == ""
    assert run(deploy(release, envs["dr"], users)).status == "succeeded"
    assert [env.name for env, _, _ in selectors.locations(release)] == ["staging", "production", "dr"]


def test_failed_deployment__runs_nowhere__release_rolled_back_then_redeployed_without_a_new_version(
        users, envs, sim_targets, approved_release):
    from releases import services

    release = approved_release()
    dep = run(deploy(release, envs["development"], users, parameters={"simulate": {"fail_deploy": True}}))
    assert dep.status == "rolled_back" and Release.objects.get(pk=release.pk).status == "rolled_back"
    with pytest.raises(errors.TransitionNotAllowed, match="redeploy it first"):
        deploy(release, envs["development"], users)
    services.release_redeploy(release=release, by=users["ops"], reason="the image registry was down")
    event = AuditEvent.objects.get(action="release.redeploy")
    assert event.reason == "the image registry was down" and event.after == {"status": "approved"}
    assert run(deploy(release, envs["development"], users)).status == "succeeded"
    assert Release.objects.get(pk=release.pk).status == "deployed"


def test_health_checks__none_configured__say_whose_they_are(users, envs, sim_targets, approved_release):
    """A production deployment reported "1 health check(s) passed" with none configured: the simulator's own
    check is reported as the backend's, beside the configured ones."""
    dep = run(deploy(approved_release(), envs["development"], users))
    outcome = dep.steps.get(kind="health_check").outcome
    assert outcome == "1 health check(s) passed (1 of the simulation backend's own, 0 configured)"


@pytest.mark.parametrize(("parameters", "named"), [
    ({"pasue": 30}, "pasue"), ({"stepz": [10, 100]}, "stepz"),
    ({"simulate": {"fail_evrything": True}}, "simulate"), ({"health_checks": [{"url": "ftp://x"}]}, "health_checks"),
    ({"auto_promote": "yes"}, "auto_promote"), ({"duration": -5}, "duration"),
])
def test_deployment_create__unknown_or_bad_parameter__refused_naming_it(users, envs, sim_targets, approved_release,
                                                                       parameters, named):
    release = approved_release()
    with pytest.raises(errors.ValidationFailed) as exc:
        deploy(release, envs["development"], users, parameters=parameters)
    assert named in exc.value.text()
    if named in ("pasue", "stepz"):
        assert "known: steps, pause" in exc.value.text()
    assert not Deployment.objects.filter(release=release).exists()
