"""Deployments executed by real Celery workers: end to end, and a worker killed with SIGKILL mid-step."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from releases import services
from releases.deploy import engine
from releases.deploy import services as deployments
from releases.models import Deployment, DeploymentStep, DeploymentTarget
from tests.factories import make_release
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


def _worker(env):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "pmrelease", "worker", "--pool", "solo", "--concurrency", "1",
         "-l", "WARNING", "-n", f"killtest-{time.monotonic_ns()}@%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.mark.integration
@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql" or not settings.REDIS_URL,
                    reason="a worker process needs the test database and broker of PostgreSQL + Redis")
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_step__watchdog_resumes__no_duplicate_effect(users, envs):
    target = DeploymentTarget.objects.create(environment=envs["development"], backend="simulation", config={
        "simulation": {"step_seconds": 2.5}, "lease_seconds": 3})
    release = _approved(users, envs)
    from pmrelease.celery import app

    app.control.purge()
    env = {**os.environ, "DATABASE_URL": _database_url()}
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        strategy="canary", parameters={"steps": [30, 100], "pause": 0})
    first = _worker(env)
    try:
        assert wait_for(lambda: DeploymentStep.objects.get(deployment=dep, position=1).status == "running",
                        timeout=60), "the worker never claimed the first step"
        os.killpg(first.pid, signal.SIGKILL)  # kill -9, mid-step
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    step = DeploymentStep.objects.get(deployment=dep, position=1)
    assert step.status == "running" and step.attempts == 1
    assert wait_for(lambda: engine.watchdog()["resumed"] == [dep.pk], timeout=15, interval=0.5)
    second = _worker(env)
    try:
        assert wait_for(lambda: Deployment.objects.get(pk=dep.pk).is_finished, timeout=90)
    finally:
        os.killpg(second.pid, signal.SIGKILL)
        second.wait(timeout=10)
    dep.refresh_from_db()
    assert dep.status == "succeeded", dep.failure_reason
    assert DeploymentStep.objects.get(deployment=dep, position=1).attempts == 2
    target.refresh_from_db()
    events = [e["event"] for e in target.state["events"]]
    assert events == [f"canary {release.version} at 30%", f"{release.version} promoted to 100%"]


def _database_url():
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
