"""Retry after a failed gate: a new, numbered gate attempt that waits for fresh results (the failed ones stay,
with their attempt), and succeeds with them."""
import pytest

from releases.deploy import engine
from releases.deploy import services as deployments
from releases.models import GateResult

pytestmark = pytest.mark.django_db


def test_retry_after_failed_gate__fresh_results_for_new_attempt__succeeds(api, users, envs, sim_targets, seed_gates,
                                                                         approved_release):
    gate = seed_gates["Unit Tests"]
    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False, auto_rollback=False)
    deployments.gate_report(deployment=dep, gate=gate, by=users["ops"], passed=9, failed=1, dispatch=False)
    dep = engine.run_inline(dep.pk)
    assert dep.status == "failed" and "blocking gate failed" in dep.failure_reason
    client = api(users["ops"])
    assert "retry" in client.get(f"/api/v1/deployments/{dep.pk}/").json()["available_actions"]
    retried = client.post(f"/api/v1/deployments/{dep.pk}/retry/", {}, format="json")
    assert retried.status_code == 200 and retried.json()["gate_attempt"] == 2
    dep = engine.run_inline(dep.pk)  # the old failure no longer counts: the gate waits for attempt 2
    assert dep.status == "running"
    gates_step = dep.steps.get(kind="gates")
    assert gates_step.status == "waiting" and "waiting for results: Unit Tests" in gates_step.outcome
    fresh = client.post(f"/api/v1/deployments/{dep.pk}/gates/unit-tests/results/", {"passed": 10, "failed": 0},
                        format="json")
    assert fresh.status_code == 201 and fresh.json()["attempt"] == 2
    dep = engine.run_inline(dep.pk)
    assert dep.status == "succeeded"
    assert list(GateResult.objects.order_by("id").values_list("attempt", "status")) == [(1, "failed"),
                                                                                        (2, "passed")]


def test_retry_after_gate_timeout__timeout_restarts_from_the_retry(users, envs, sim_targets, seed_gates,
                                                                   approved_release, settings):
    import datetime as dt

    import time_machine

    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False, auto_rollback=False)
    engine.run_inline(dep.pk)
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11), tick=True):
        dep = engine.run_inline(dep.pk)
        assert dep.status == "failed" and "no result before the timeout" in dep.failure_reason
        deployments.deployment_action(deployment=dep, name="retry", by=users["ops"], dispatch=False)
        dep = engine.run_inline(dep.pk)
        assert dep.status == "running" and dep.gate_attempt == 2  # waits again: a fresh 10-minute timeout
