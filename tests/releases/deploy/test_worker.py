"""Deployments executed by real Celery workers: end to end, and a worker killed with SIGKILL mid-step."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from releases import services
from releases.deploy import engine
from releases.deploy import services as deployments
from releases.models import Deployment, DeploymentStep, DeploymentTarget
from tests.factories import make_release
from tests.flags.processes import process_env
from tests.integration_support import running_worker, wait_for

ROOT = Path(__file__).resolve().parents[3]  # the repository


def _approved(users, envs, **kw):
    release = make_release(by=users["dev"], envs=[envs["development"]], **kw)
    services.release_approve(release=release, by=users["approver"])
    return release


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_canary__real_worker__runs_every_step_to_success(users, envs):
    DeploymentTarget.objects.create(environment=envs["development"], backend="simulation")
    release = _approved(users, envs)
    with running_worker():
        dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                            strategy="canary", parameters={"steps": [20, 100], "pause": 1})
        assert wait_for(lambda: Deployment.objects.get(pk=dep.pk).is_finished, timeout=60)
    dep.refresh_from_db()
    assert dep.status == "succeeded", dep.failure_reason
    assert all(s.status == "succeeded" for s in dep.steps.all())
    pause = dep.steps.get(kind="pause")
    assert (pause.finished_at - pause.started_at).total_seconds() >= 1


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_failing_canary__real_worker__rolls_back_on_its_own(users, envs):
    DeploymentTarget.objects.create(environment=envs["development"], backend="simulation",
                                    config={"simulation": {"fail_health_check_at_weight": 50}})
    release = _approved(users, envs)
    with running_worker():
        dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                            strategy="canary", parameters={"pause": 0})
        assert wait_for(lambda: Deployment.objects.get(pk=dep.pk).is_finished, timeout=60)
    dep.refresh_from_db()
    assert dep.status == "rolled_back" and "Health checks at 50%" in dep.failure_reason


class Workers:
    """Real ``celery worker`` processes (solo pool) on the test database and broker — SQLite with the filesystem
    broker or PostgreSQL with Redis, whichever the suite runs on — with short leases (DEPLOY_LEASE_SECONDS)."""

    def __init__(self, log_dir, lease_seconds):
        self.env = process_env(DEPLOY_LEASE_SECONDS=lease_seconds)
        self.log_dir = Path(log_dir)
        self.processes = {}

    def start(self):
        log = self.log_dir / f"worker-{len(self.processes)}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "pmrelease", "worker", "--pool", "solo", "--concurrency", "1",
             "-l", "WARNING", "-n", f"killtest-{time.monotonic_ns()}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)
        self.processes[process.pid] = process
        return process

    def holding(self, step):
        """The worker process holding ``step``'s lease (lease_holder is host:pid)."""
        pid = int(step.lease_holder.rsplit(":", 1)[1])
        assert pid in self.processes, f"{step.lease_holder} is none of this test's workers"
        return self.processes[pid]

    def logs(self):
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.log_dir.glob("worker-*.log")))

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def workers(tmp_path):
    from pmrelease.celery import app

    with contextlib.suppress(Exception):
        app.control.purge()
    pool = Workers(tmp_path, lease_seconds=2)
    yield pool
    pool.stop()


def _taken_over(dep, generation, seconds, watchdog_every=0.5):
    """Run the watchdog (as beat would) until the first step is claimed under ``generation``; seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if DeploymentStep.objects.get(deployment=dep, position=1).lease_generation >= generation:
            return time.monotonic() - start
        engine.watchdog()
        time.sleep(watchdog_every)
    raise AssertionError(f"step 1 not taken over within {seconds} s")


def _first_step_running(dep, workers):
    assert wait_for(lambda: DeploymentStep.objects.get(deployment=dep, position=1).status == "running",
                    timeout=60), f"no worker claimed the first step: {workers.logs()}"
    return DeploymentStep.objects.get(deployment=dep, position=1)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_step__taken_over_in_seconds__exactly_once(users, envs, workers):
    """kill -9 of the worker running a step: another worker runs it again within ~30 s (here: a 2 s lease), the
    loss is not counted as an attempt, and the deployment's effects happen once each."""
    target = DeploymentTarget.objects.create(environment=envs["development"], backend="simulation", config={
        "simulation": {"step_seconds": 2.5}})
    release = _approved(users, envs)
    workers.start()
    workers.start()
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        strategy="canary", parameters={"steps": [30, 100], "pause": 0})
    step = _first_step_running(dep, workers)
    victim = workers.holding(step)
    os.killpg(victim.pid, signal.SIGKILL)  # kill -9, mid-step (the simulated canary takes 2.5 s)
    victim.wait(timeout=10)
    assert _taken_over(dep, generation=2, seconds=30) < 30, workers.logs()
    assert wait_for(lambda: Deployment.objects.get(pk=dep.pk).is_finished, timeout=90), workers.logs()
    dep.refresh_from_db()
    assert dep.status == "succeeded", dep.failure_reason
    step = DeploymentStep.objects.get(deployment=dep, position=1)
    assert (step.attempts, step.worker_losses, step.lease_generation) == (1, 1, 2)
    assert step.lease_holder != f"{step.lease_holder.rsplit(':', 1)[0]}:{victim.pid}"
    target.refresh_from_db()
    events = [e["event"] for e in target.state["events"]]
    assert events == [f"canary {release.version} at 30%", f"{release.version} promoted to 100%"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_worker_stopped_past_its_lease__taken_over__late_result_discarded(users, envs, workers):
    """SIGSTOP of the worker running a step, past its lease: another worker takes the step over and finishes the
    deployment; on SIGCONT the stalled worker applies nothing (fenced) and its result is discarded."""
    target = DeploymentTarget.objects.create(environment=envs["development"], backend="simulation", config={
        "simulation": {"step_seconds": 1.5}})
    release = _approved(users, envs)
    workers.start()
    workers.start()
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        strategy="canary", parameters={"steps": [30, 100], "pause": 0})
    step = _first_step_running(dep, workers)
    slow = workers.holding(step)
    os.killpg(slow.pid, signal.SIGSTOP)
    try:
        assert _taken_over(dep, generation=2, seconds=30) < 30, workers.logs()
        assert wait_for(lambda: Deployment.objects.get(pk=dep.pk).is_finished, timeout=90), workers.logs()
    finally:
        os.killpg(slow.pid, signal.SIGCONT)
    assert wait_for(lambda: "discarded" in DeploymentStep.objects.get(deployment=dep, position=1).log[-1]["msg"],
                    timeout=30), workers.logs()
    dep.refresh_from_db()
    assert dep.status == "succeeded", dep.failure_reason
    step = DeploymentStep.objects.get(deployment=dep, position=1)
    assert (step.status, step.attempts, step.worker_losses) == ("succeeded", 1, 1)
    assert "lease (generation 1) on this step was lost" in step.log[-1]["msg"]
    target.refresh_from_db()
    events = [e["event"] for e in target.state["events"]]
    assert events == [f"canary {release.version} at 30%", f"{release.version} promoted to 100%"]
    assert target.state["canary"] is None and target.state["version"] == release.version
