"""Step leases tied to worker liveness: short, renewed by a heartbeat, fenced by generation."""
import datetime as dt
import time

import pytest
from django.conf import settings

from releases.deploy import engine, leases
from releases.deploy import services as deployments
from releases.models import DeploymentStep, DeploymentTarget

pytestmark = pytest.mark.django_db


def _deploy(users, envs, approved_release, **kw):
    return deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                         by=users["ops"], dispatch=False, **kw)


def test_claim__rollout_step__lease_is_short_not_the_progress_timeout(users, envs, sim_targets, approved_release,
                                                                     monkeypatch):
    dep = _deploy(users, envs, approved_release, strategy="rolling-update")
    seen = {}
    real = engine.execute

    def spy(dep_, step, target, check_lease=None):
        row = DeploymentStep.objects.get(pk=step.pk)
        seen["lease"] = (row.lease_until - engine._now()).total_seconds()
        seen["generation"], seen["holder"] = row.lease_generation, row.lease_holder
        return real(dep_, step, target, check_lease=check_lease)

    monkeypatch.setattr(engine, "execute", spy)
    assert engine.advance(dep.pk, dispatch=False) == "step succeeded"
    # a deploy step used to hold 2 × progress_timeout + 60 = 1260 s: a killed worker's step sat for 21 minutes
    assert 0 < seen["lease"] <= settings.DEPLOY_LEASE_SECONDS
    assert seen["generation"] == 1 and seen["holder"] == leases.holder()


@pytest.mark.django_db(transaction=True)
def test_heartbeat__step_running__lease_renewed_until_taken_over(users, envs, sim_targets, approved_release):
    dep = _deploy(users, envs, approved_release, strategy="rolling-update")
    step = dep.steps.get(position=1)
    first = engine._now() + dt.timedelta(seconds=0.3)
    DeploymentStep.objects.filter(pk=step.pk).update(status="running", lease_generation=1, lease_until=first)
    with leases.Heartbeat(step.pk, 1, 0.3) as beat:
        time.sleep(0.5)
        renewed = DeploymentStep.objects.get(pk=step.pk).lease_until
        assert renewed > first and not beat.lost.is_set()
        DeploymentStep.objects.filter(pk=step.pk).update(lease_generation=2)  # another worker took it over
        assert _within(2, beat.lost.is_set)
    # the taken-over lease is not extended by the old holder any more
    assert DeploymentStep.objects.get(pk=step.pk).lease_until <= renewed + dt.timedelta(seconds=0.3)


def _within(seconds, check):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_slow_worker__taken_over_meanwhile__late_effect_fenced_and_result_discarded(users, envs, sim_targets,
                                                                                    approved_release, monkeypatch):
    """Worker A claims the canary step and stalls (SIGSTOP) past its lease; worker B takes the step over and
    runs the deployment to its end; then A continues: its canary effect is refused and its result discarded."""
    dep = _deploy(users, envs, approved_release, strategy="canary", parameters={"pause": 0})
    real = engine.execute
    calls = []

    def stall_then_continue(dep_, step, target, check_lease=None):
        calls.append(step.kind)
        if len(calls) == 1:  # worker A, stalled: its lease runs out and worker B does everything
            DeploymentStep.objects.filter(pk=step.pk).update(lease_until=engine._now() - dt.timedelta(seconds=1))
            assert engine.run_inline(dep.pk).status == "succeeded"
        return real(dep_, step, target, check_lease=check_lease)  # A continues, late

    monkeypatch.setattr(engine, "execute", stall_then_continue)
    assert engine.advance(dep.pk, dispatch=False) == "superseded: another worker took the step over"
    dep.refresh_from_db()
    assert dep.status == "succeeded"
    target = DeploymentTarget.objects.get(environment=envs["development"])
    version = dep.release.version
    assert [e["event"] for e in target.state["events"]] == [
        f"canary {version} at 10%", f"canary {version} at 50%", f"{version} promoted to 100%"]
    assert target.state["canary"] is None and target.state["version"] == version  # no late "canary at 10%"
    step = dep.steps.get(position=1)
    assert step.status == "succeeded" and step.attempts == 1 and step.worker_losses == 1
    assert step.lease_generation == 2
    late = step.log[-1]["msg"]
    assert "late result" in late and "(lease 1) discarded" in late and "generation 1" in late
