"""The simulation backend's CI: gate results reported through the real gate service a few seconds after a
deployment starts waiting for them, configurable per target (a failing E2E run to show an override)."""
import pytest

from pmrelease.models import AuditEvent
from releases.deploy import engine
from releases.deploy import services as deployments
from releases.deploy.backends import config_problems
from releases.models import Deployment, DeploymentStep, DeploymentTarget, GateResult
from tests.factories import make_release
from tests.integration_support import running_worker, wait_for

pytestmark = pytest.mark.django_db


def _until_gates_wait(dep):
    for _ in range(50):
        result = engine.advance(dep.pk, dispatch=False)
        step = engine.current_step(Deployment.objects.get(pk=dep.pk))
        if step is not None and step.kind == "gates" and result == "step waits":
            return step
    raise AssertionError("the deployment never waited for its gates")


def _simulated_ci(target, **ci):
    target.config = {"simulation": {"ci": ci}}
    target.save()


def test_simulated_ci__gates_waiting__each_scheduled_after_its_delay(users, envs, sim_targets, seed_gates,
                                                                     approved_release, monkeypatch):
    _simulated_ci(sim_targets["development"], after_seconds=3)
    scheduled = []
    monkeypatch.setattr(engine, "_dispatch_simulated_ci",
                        lambda dep_id, gate_id, seconds, dispatch: scheduled.append((dep_id, gate_id, seconds)))
    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False)
    step = _until_gates_wait(dep)
    assert scheduled == [(dep.pk, seed_gates["Unit Tests"].pk, 3.0)]
    assert "simulated CI (simulation backend): results for Unit Tests in 3 s" in [e["msg"] for e in step.log]


def test_simulated_ci__no_ci_configured__nothing_scheduled(users, envs, sim_targets, seed_gates, approved_release,
                                                           monkeypatch):
    scheduled = []
    monkeypatch.setattr(engine, "_dispatch_simulated_ci", lambda *args: scheduled.append(args))
    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False)
    _until_gates_wait(dep)
    assert scheduled == []
    assert "no simulated CI" in deployments.simulated_ci_report(deployment_id=dep.pk,
                                                                gate_id=seed_gates["Unit Tests"].pk)
    assert not GateResult.objects.exists()


def test_simulated_ci__first_e2e_run_fails__override_then_next_run_passes(users, envs, sim_targets, seed_gates,
                                                                          approved_release):
    for name in ("development", "staging"):
        _simulated_ci(sim_targets[name], after_seconds=0, fail={"e2e-tests": 1})
    release = approved_release()
    dev = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        dispatch=False)
    _until_gates_wait(dev)
    deployments.simulated_ci_report(deployment_id=dev.pk, gate_id=seed_gates["Unit Tests"].pk, dispatch=False)
    assert engine.run_inline(dev.pk).status == "succeeded"
    staging = deployments.deployment_create(release=release, environment=envs["staging"], by=users["ops"],
                                            dispatch=False)
    _until_gates_wait(staging)
    for gate in staging.environment.testing_gates.all():
        deployments.simulated_ci_report(deployment_id=staging.pk, gate_id=gate.pk, dispatch=False)
    results = {r.gate.name: r for r in GateResult.objects.filter(deployment=staging)}
    assert {n: r.status for n, r in results.items()} == {
        "Integration Tests": "passed", "E2E Tests": "failed", "Performance Tests": "passed",
        "Security Tests": "passed"}
    assert all(r.source == "simulated" and r.reported_by == users["ops"] for r in results.values())
    # through the real gate service: audited, and the warn gate waits for an override
    assert AuditEvent.objects.filter(action="gate.result").count() == 5
    staging = engine.run_inline(staging.pk)
    assert staging.status == "awaiting_approval" and "E2E Tests" in staging.waiting_for
    # a second message for the same gate records nothing more
    assert "recorded already" in deployments.simulated_ci_report(deployment_id=staging.pk,
                                                                 gate_id=seed_gates["E2E Tests"].pk)
    deployments.gate_override(deployment=staging, gate=seed_gates["E2E Tests"], by=users["ops"],
                              reason="the simulated E2E failure", dispatch=False)
    assert engine.run_inline(staging.pk).status == "succeeded"
    # only the first simulated E2E run fails
    again = deployments.deployment_create(release=approved_release(type="hotfix"), environment=envs["staging"],
                                          by=users["ops"], dispatch=False)
    _until_gates_wait(again)
    deployments.simulated_ci_report(deployment_id=again.pk, gate_id=seed_gates["E2E Tests"].pk, dispatch=False)
    assert GateResult.objects.get(deployment=again, gate=seed_gates["E2E Tests"]).status == "passed"


def test_simulated_ci__ended_deployment__nothing_recorded(users, envs, sim_targets, seed_gates, approved_release):
    _simulated_ci(sim_targets["development"], after_seconds=0)
    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False)
    _until_gates_wait(dep)
    deployments.deployment_action(deployment=dep, name="abort", by=users["ops"], reason="stop", dispatch=False)
    engine.run_inline(dep.pk)
    message = deployments.simulated_ci_report(deployment_id=dep.pk, gate_id=seed_gates["Unit Tests"].pk)
    assert "nothing to report" in message and not GateResult.objects.filter(deployment=dep).exists()


@pytest.mark.parametrize(("ci", "problem"), [
    ("soon", "must be an object"),
    ({"after_seconds": "5"}, "after_seconds must be a number"),
    ({"after_seconds": -1}, "after_seconds must be a number"),
    ({"fail": {"e2e-tests": "always"}}, "fail must map gate slugs"),
])
def test_simulated_ci__invalid_config__refused_saying_what(ci, problem):
    assert any(problem in p for p in config_problems("simulation", {"simulation": {"ci": ci}}))


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_simulated_ci__real_worker__deployment_finishes_without_anyone_reporting(users, envs, seed_gates):
    target = DeploymentTarget.objects.create(environment=envs["development"], backend="simulation")
    _simulated_ci(target, after_seconds=1)
    release = make_release(by=users["dev"], envs=[envs["development"]])
    from releases import services

    services.release_approve(release=release, by=users["approver"])
    with running_worker():
        dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"])
        assert wait_for(lambda: Deployment.objects.get(pk=dep.pk).is_finished, timeout=60)
    dep.refresh_from_db()
    assert dep.status == "succeeded", dep.failure_reason
    result = GateResult.objects.get(deployment=dep)
    assert (result.gate.name, result.status, result.source) == ("Unit Tests", "passed", "simulated")
    gates_step = DeploymentStep.objects.get(deployment=dep, kind="gates")
    assert (gates_step.finished_at - gates_step.started_at).total_seconds() < 15  # not the 10-minute timeout
