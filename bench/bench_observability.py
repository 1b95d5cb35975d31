"""Observability benchmark: the DORA report over a large history, a /metrics scrape summing many processes, and
the cost the HTTP metrics add to each request.

Run by hand (not part of `make test`), against PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pmbench SECRET_KEY=bench-0123456789abcdefghijklmnopqrstuvwxyz0123 \\
        VAR_DIR=/tmp/pmbench .venv/bin/python bench/bench_observability.py

Part 1: N deployments (spread over 6 environments and the last 13 weeks, a tenth rolled back, a twentieth
failed, each with a rollback step), N/20 incidents and N/10 covering change requests' links faked as release
links: ``monitoring.selectors.dora_report`` for 13 weeks and for 3 quarters, wall time and database queries.
Part 2: P processes each write the counters and histograms of 30 views × 3 statuses into the multiprocess
directory: one /metrics scrape (``exposition_registry`` + ``generate_latest``), wall time and size.
Part 3: the instruments' cost per request in multiprocess mode (a counter increment and a histogram observation,
what ``MetricsMiddleware`` adds).
"""
import datetime as dt
import multiprocessing
import os
import random
import statistics
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
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402

from monitoring import selectors  # noqa: E402
from monitoring.statuspage.models import Incident  # noqa: E402
from pmrelease import metrics  # noqa: E402
from releases.models import Deployment, DeploymentStep, Environment, Release  # noqa: E402


def load(before):
    try:
        return f"load average {os.getloadavg()[0]:.1f} {before}"
    except OSError:
        return ""


def history(n):
    call_command("migrate", verbosity=0)
    Incident.objects.all().delete()
    DeploymentStep.objects.all().delete()
    Deployment.objects.all().delete()
    Release.objects.all().delete()
    names = ["local", "development", "qa", "staging", "production", "dr"]
    envs = []
    for position, name in enumerate(names):
        env, _ = Environment.objects.get_or_create(name=name, defaults={
            "display_name": name.title(), "tier": "production" if name in ("production", "dr") else "development",
            "position": position})
        envs.append(env)
    rng = random.Random(7)
    now = timezone.now()
    releases = Release.objects.bulk_create([Release(version=f"9.{i}.0", type="minor", title=f"r{i}")
                                            for i in range(n // 6 + 1)])
    deployments = []
    for i in range(n):
        started = now - dt.timedelta(seconds=rng.uniform(0, 91 * 86400))
        roll = rng.random()
        status = "rolled_back" if roll < 0.1 else "failed" if roll < 0.15 else "succeeded"
        deployments.append(Deployment(
            release=releases[i // 6], environment=envs[i % 6], strategy="canary", backend="simulation",
            status=status, started_at=started, created_at=started,
            finished_at=started + dt.timedelta(minutes=rng.uniform(2, 60)),
            rolled_back_automatically=status == "rolled_back"))
    deployments = Deployment.objects.bulk_create(deployments, batch_size=2000)
    DeploymentStep.objects.bulk_create([
        DeploymentStep(deployment=d, phase="rollback", position=99, kind="rollback", name="undo",
                       status="succeeded", started_at=d.finished_at - dt.timedelta(minutes=1),
                       finished_at=d.finished_at) for d in deployments if d.status == "rolled_back"], batch_size=2000)
    Incident.objects.bulk_create([
        Incident(name=f"incident {i}", environment=envs[i % 6], deployment=deployments[i * 20],
                 created_at=deployments[i * 20].finished_at, started_at=deployments[i * 20].finished_at,
                 resolved_at=deployments[i * 20].finished_at + dt.timedelta(hours=rng.uniform(0.2, 8)),
                 status="resolved") for i in range(n // 20)], batch_size=2000)


def part1(n):
    history(n)
    admin, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_superuser": True,
                                                                                          "is_staff": True})
    rows = []
    for period, count in (("week", 13), ("quarter", 3)):
        times, queries = [], 0
        for _ in range(3):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                report = selectors.dora_report(user=admin, period=period, count=count)
                times.append(time.perf_counter() - started)
            queries = len(captured.captured_queries)
        assert len(report["environments"]) == 6
        rows.append((n, period, count, statistics.median(times), queries))
    return rows


def _writer(index, directory):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from pmrelease import metrics as m

    for view in range(30):
        for status in ("200", "404", "500"):
            m.http_requests.labels(f"view-{view}", "GET", status).inc(index + 1)
            m.http_duration.labels(f"view-{view}", "GET").observe(0.01 * (index + 1))
    m.deployments.labels("production", "succeeded").inc()


def part2(processes):
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(i, directory)) for i in range(processes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    times, size = [], 0
    for _ in range(5):
        started = time.perf_counter()
        body = generate_latest(metrics.exposition_registry())
        times.append(time.perf_counter() - started)
        size = len(body)
    return processes, len(os.listdir(directory)), statistics.median(times), size


def part3(n=20000):
    started = time.perf_counter()
    for i in range(n):
        metrics.http_requests.labels("bench-view", "GET", "200").inc()
        metrics.http_duration.labels("bench-view", "GET").observe(0.001 * (i % 50))
    return (time.perf_counter() - started) / n * 1e6


if __name__ == "__main__":
    print(load("before the run"))
    assert metrics.MULTIPROCESS, "PROMETHEUS_MULTIPROC_DIR was not set before prometheus_client was imported"
    for n in (1000, 10000):
        for count, period, periods, seconds, queries in part1(n):
            print(f"DORA: {count} deployments, {period} × {periods}: median {seconds:.3f} s, {queries} queries")
    for processes in (4, 16):
        procs, files, seconds, size = part2(processes)
        print(f"scrape: {procs} processes ({files} files): median {seconds:.3f} s, {size} bytes")
    print(f"instruments: {part3():.1f} µs per request (counter + histogram, multiprocess)")
    print(load("after the run"))
