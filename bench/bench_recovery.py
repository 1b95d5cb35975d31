"""Crash-recovery benchmark: time from `kill -9` of the worker running a step to that step running again.

Run by hand (not part of `make test`), embedded (SQLite and the filesystem broker under VAR_DIR):

    VAR_DIR=$PWD/var/bench-recovery .venv/bin/python bench/bench_recovery.py

or against PostgreSQL and Redis:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pmbench REDIS_URL=redis://127.0.0.1:6379/10 \\
        SECRET_KEY=bench-0123456789abcdefghijklmnopqrstuvwxyz0123456789 .venv/bin/python bench/bench_recovery.py

It migrates the database, creates its own environments (bench-N) with simulation targets whose operations take
BENCH_STEP_SECONDS (6 s), and starts two Celery workers (solo pool) and beat — the production settings:
DEPLOY_LEASE_SECONDS 10, DEPLOY_WATCHDOG_SECONDS 5. BENCH_KILLS times (20): start a rolling deployment, wait
until a worker claims its first step, `kill -9` that worker (and start a replacement, as systemd or Kubernetes
would), and time until the step is claimed again by another worker (its lease generation one higher); then let the
deployment finish and check it succeeded with each effect once.
"""
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")

from bench_deploy_engine import new_release, setup  # noqa: E402  (django.setup() done there)
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402

from pmrelease.roles import Role  # noqa: E402
from releases.deploy import services as deployments  # noqa: E402
from releases.models import Deployment, DeploymentStep, DeploymentTarget  # noqa: E402


def start(args, name):
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "pmrelease", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def worker(i):
    return start(["worker", "--pool", "solo", "-l", "WARNING", "-n", f"recovery{i}-{time.monotonic_ns()}@%h",
                  "--without-gossip", "--without-mingle"], f"worker{i}")


def wait(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def main():
    kills = int(os.environ.get("BENCH_KILLS", "20"))
    step_seconds = float(os.environ.get("BENCH_STEP_SECONDS", "6"))
    envs, ops, author, approver = setup(kills)
    approver.groups.add(Group.objects.get(name=Role.APPROVERS.value))  # eligible under the approval policy
    for env in envs:
        DeploymentTarget.objects.filter(environment=env).update(config={"simulation": {"step_seconds": step_seconds}},
                                                                state={})
    from pmrelease.celery import app

    app.control.purge()
    print(f"database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, broker "
          f"{settings.CELERY_BROKER_URL.split(':', 1)[0]}, lease {settings.DEPLOY_LEASE_SECONDS:g} s, watchdog every "
          f"{settings.DEPLOY_WATCHDOG_SECONDS:g} s, load {os.getloadavg()[0]:.2f}")
    schedule = Path(settings.VAR_DIR) / "bench-recovery-beat"
    workers = {p.pid: p for p in (worker(0), worker(1))}
    beat = start(["beat", "-l", "WARNING", "-s", str(schedule)], "beat")
    time.sleep(5)
    times, problems = [], []
    try:
        for i in range(kills):
            env = envs[i]
            release = new_release([env], ops, approver)  # ops may plan for the bench environments
            dep = deployments.deployment_create(release=release, environment=env, by=ops, strategy="rolling-update",
                                                parameters={})
            step = DeploymentStep.objects.get(deployment=dep, position=1)
            if not wait(lambda s=step: DeploymentStep.objects.filter(pk=s.pk, status="running").exists(), 60):
                raise SystemExit(f"kill {i + 1}: no worker claimed the first step")
            step.refresh_from_db()
            pid = int(step.lease_holder.rsplit(":", 1)[1])
            generation = step.lease_generation
            killed = time.monotonic()
            os.killpg(pid, signal.SIGKILL)
            workers.pop(pid).wait(timeout=10)
            replacement = worker(i + 2)
            workers[replacement.pid] = replacement
            if not wait(lambda s=step, g=generation: DeploymentStep.objects.filter(
                    pk=s.pk, lease_generation__gt=g).exists(), 120):
                raise SystemExit(f"kill {i + 1}: the step was not taken over within 120 s")
            took = time.monotonic() - killed
            times.append(took)
            wait(lambda d=dep: Deployment.objects.get(pk=d.pk).is_finished, 120, interval=0.2)
            dep.refresh_from_db()
            step.refresh_from_db()
            events = (DeploymentTarget.objects.get(environment=env).state or {}).get("events", [])
            deploys = [e for e in events if e["deployment"] == dep.pk]
            if dep.status != "succeeded" or len(deploys) != 1 or step.attempts != 1 or step.worker_losses != 1:
                problems.append(f"#{dep.pk}: {dep.status}, {len(deploys)} deploy effect(s), attempts "
                                f"{step.attempts}, worker losses {step.worker_losses}")
            print(f"kill {i + 1:2}: step running again after {took:5.1f} s; deployment {dep.status}")
    finally:
        for process in [*workers.values(), beat]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*workers.values(), beat]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{len(times)} kills: kill -9 to the step running again: mean {statistics.mean(times):.1f} s, "
          f"p50 {ordered[len(ordered) // 2]:.1f} s, p99 {p99:.1f} s, max {ordered[-1]:.1f} s "
          f"(target <= 30 s); problems: {problems or 'none'}")


if __name__ == "__main__":
    main()
