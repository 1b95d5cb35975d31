"""Deployment engine benchmark: orchestration overhead per step, and concurrent deployments on 2 workers.

Run by hand (not part of `make test`), against PostgreSQL and Redis:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pmbench REDIS_URL=redis://127.0.0.1:6379/10 \\
        SECRET_KEY=bench-0123456789abcdefghijklmnopqrstuvwxyz0123456789 .venv/bin/python bench/bench_deploy_engine.py

It migrates that database, creates its own environments (bench-N) with simulation targets, and starts two
Celery worker processes (solo pool, one task at a time each). Part 1 runs every step in this process and times
``engine.advance`` (claim + execute + complete: three short transactions). Part 2 starts N canary deployments at
once, each with three timed pauses, and measures how long the two workers take to carry all of them to the end
compared with the ideal (the pauses alone).
"""
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from pmrelease.bootstrap import ensure_role_groups  # noqa: E402
from releases import services  # noqa: E402
from releases.deploy import engine  # noqa: E402
from releases.deploy import services as deployments  # noqa: E402
from releases.models import Deployment, DeploymentStep, DeploymentTarget, Environment, Release  # noqa: E402


def setup(n_envs):
    call_command("migrate", verbosity=0)
    groups = ensure_role_groups()
    User = get_user_model()
    ops, _ = User.objects.get_or_create(username="bench-ops", defaults={"is_staff": True, "is_superuser": True})
    author, _ = User.objects.get_or_create(username="bench-dev")
    author.groups.add(groups["developers"])
    approver, _ = User.objects.get_or_create(username="bench-approver", defaults={"is_superuser": True})
    envs = []
    for i in range(n_envs):
        env, _ = Environment.objects.get_or_create(name=f"bench-{i}", defaults={
            "display_name": f"Bench {i}", "tier": "development", "position": 100 + i})
        DeploymentTarget.objects.get_or_create(environment=env, defaults={"backend": "simulation"})
        envs.append(env)
    for u in (ops, approver):
        if hasattr(u, "_pm_access"):
            del u._pm_access
    return envs, ops, author, approver


def new_release(envs, author, approver):
    version = services.propose_version("patch")
    release = services.release_create(by=author, data={"version": version, "type": "patch", "title": "bench",
                                                       "environments": envs, "quorum": 1},
                                      plan={"rollback_steps": [{"order": 1, "description": "undo",
                                                                "verification": "ok"}]})
    services.release_approve(release=release, by=approver)
    return release


def part1(envs, ops, author, approver, deployments_n=20):
    """Time each advance() call of canary deployments with no pauses (pure orchestration)."""
    timings = []
    for i in range(deployments_n):
        env = envs[i % len(envs)]
        release = new_release([env], author, approver)
        dep = deployments.deployment_create(release=release, environment=env, by=ops, strategy="canary",
                                            parameters={"steps": [10, 25, 50, 100], "pause": 0}, dispatch=False)
        while True:
            start = time.perf_counter()
            result = engine.advance(dep.pk, dispatch=False)
            timings.append((time.perf_counter() - start) * 1000)
            if result == "finished":
                break
    timings.sort()
    return {"steps": len(timings), "mean_ms": statistics.mean(timings), "p50_ms": timings[len(timings) // 2],
            "p99_ms": timings[int(len(timings) * 0.99) - 1]}


def workers(n=2):
    procs = []
    for i in range(n):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "pmrelease", "worker", "--pool", "solo", "-l", "WARNING",
             "-n", f"bench{i}@%h", "--without-gossip", "--without-mingle"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(4)
    return procs


def part2(envs, ops, author, approver, n, pause):
    """N concurrent canary deployments (3 timed pauses each) carried by the two workers."""
    batch = envs[:n]
    releases = [new_release([env], author, approver) for env in batch]
    start = time.monotonic()
    deps = [deployments.deployment_create(release=r, environment=env, by=ops, strategy="canary",
                                          parameters={"steps": [10, 25, 50, 100], "pause": pause})
            for r, env in zip(releases, batch, strict=True)]
    ids = [d.pk for d in deps]
    deadline = start + 600
    while time.monotonic() < deadline:
        done = Deployment.objects.filter(pk__in=ids, status__in=["succeeded", "failed", "rolled_back"]).count()
        if done == len(ids):
            break
        time.sleep(0.25)
    elapsed = time.monotonic() - start
    ok = Deployment.objects.filter(pk__in=ids, status="succeeded").count()
    steps = DeploymentStep.objects.filter(deployment_id__in=ids).count()
    ideal = 3 * pause
    return {"deployments": n, "succeeded": ok, "steps": steps, "elapsed_s": elapsed, "ideal_s": ideal,
            "overhead_s": elapsed - ideal, "steps_per_s": steps / elapsed}


def main():
    sizes = [int(x) for x in os.environ.get("BENCH_SIZES", "10,50,100").split(",")]
    pause = float(os.environ.get("BENCH_PAUSE", "10"))
    envs, ops, author, approver = setup(max(sizes))
    from pmrelease.celery import app

    app.control.purge()
    p1 = part1(envs, ops, author, approver)
    print(f"part 1: orchestration overhead per step over {p1['steps']} steps: mean {p1['mean_ms']:.1f} ms, "
          f"p50 {p1['p50_ms']:.1f} ms, p99 {p1['p99_ms']:.1f} ms")
    procs = workers(2)
    try:
        for n in sizes:
            r = part2(envs, ops, author, approver, n, pause)
            print(f"part 2: {r['deployments']} concurrent canary deployments ({r['steps']} steps, 3 pauses of "
                  f"{pause:g} s): {r['succeeded']} succeeded in {r['elapsed_s']:.1f} s (ideal {r['ideal_s']:.0f} s, "
                  f"overhead {r['overhead_s']:.1f} s), {r['steps_per_s']:.1f} steps/s on 2 workers")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
    print("releases created:", Release.objects.count())


if __name__ == "__main__":
    main()
