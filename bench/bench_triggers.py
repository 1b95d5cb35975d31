"""Rollback-trigger watch benchmark: one tick over many watched deployments, and the firing delay.

Run by hand (not part of `make test`), against PostgreSQL, with Debian's `prometheus` installed:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pmbench SECRET_KEY=bench-0123456789abcdefghijklmnopqrstuvwxyz0123 \\
        .venv/bin/python bench/bench_triggers.py

Part 1: N succeeded deployments in their bake time (spread over 10 environments), 3 triggers each (error_rate,
response_time_p95, error_rate relative to the stable version), judged by one tick of the watch — against the
builtin provider (samples in the database) and against a real Prometheus scraping an exporter with one series
per version. It reports the tick's wall time, database queries and HTTP queries, at N = 100 and N = 1,000.
Part 2: a sustained breach on the builtin provider with a 30 s duration and a 5 s tick: the delay from the end
of the duration to the rollback's first step.
"""
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from monitoring.metrics import services as metrics  # noqa: E402
from monitoring.metrics.prometheus import PrometheusProvider  # noqa: E402
from monitoring.models import MetricBucket, MetricsConfig  # noqa: E402
from releases.deploy import engine, watch  # noqa: E402
from releases.models import (  # noqa: E402
    Deployment,
    DeploymentStep,
    DeploymentTarget,
    Environment,
    Release,
    RollbackTrigger,
    TriggerEvaluation,
)
from tests.prometheus_support import Exporter, prometheus_scraping, wait_for_series  # noqa: E402

ENVS = 10
TRIGGERS = [
    {"metric": "error_rate", "operator": ">", "threshold": 0.1, "duration": 300},
    {"metric": "response_time_p95", "operator": ">", "threshold": 5, "duration": 180, "action": "alert"},
    {"metric": "error_rate", "operator": ">", "threshold": 2, "duration": 300, "compare": "stable"},
]


def reset():
    call_command("migrate", verbosity=0)
    TriggerEvaluation.objects.all().delete()
    MetricBucket.objects.all().delete()
    Deployment.objects.filter(environment__name__startswith="bench-").delete()
    Release.objects.filter(version__startswith="9").delete()
    MetricsConfig.objects.filter(environment__name__startswith="bench-").delete()


def watched_deployments(n):
    """``n`` succeeded deployments in their bake time, spread over ENVS environments (rows made directly)."""
    envs = []
    for i in range(ENVS):
        env, _ = Environment.objects.get_or_create(name=f"bench-{i}", defaults={
            "display_name": f"Bench {i}", "tier": "production", "bake_minutes": 60})
        DeploymentTarget.objects.get_or_create(environment=env, defaults={"backend": "script"})
        envs.append(env)
    now = timezone.now()
    releases = Release.objects.bulk_create([Release(version=f"9.{i}.0", type="minor", title="bench", status="deployed")
                                            for i in range(n)])
    deployments = Deployment.objects.bulk_create([
        Deployment(release=r, environment=envs[i % ENVS], strategy="rolling-update", backend="script",
                   status="succeeded", previous_version="8.0.0", started_at=now, finished_at=now)
        for i, r in enumerate(releases)])
    RollbackTrigger.objects.bulk_create([RollbackTrigger(deployment=d, position=j, **{
        "action": "rollback", "cooldown": 60, **spec}) for d in deployments for j, spec in enumerate(TRIGGERS)])
    return envs, releases, deployments


def push_builtin(envs, releases, now):
    samples = {}
    for i, release in enumerate(releases):
        env = envs[i % ENVS]
        for k in range(12):  # ten minutes of 60 s buckets
            at = (now - dt.timedelta(seconds=60 * k)).isoformat()
            samples.setdefault(env.pk, []).extend([
                {"metric": "error_rate", "value": 0.01, "version": release.version, "at": at},
                {"metric": "response_time_p95", "value": 0.2, "version": release.version, "at": at}])
    for env_id, batch in samples.items():
        for start in range(0, len(batch), settings.METRICS_INGEST_MAX_SAMPLES):
            metrics.ingest(environment_id=env_id, samples=batch[start:start + 1000])


def one_tick(label, n):
    PrometheusProvider.queries_total = 0
    original = PrometheusProvider.query_range
    calls = []

    def counting(self, query, **kw):
        calls.append(query)
        return original(self, query, **kw)

    PrometheusProvider.query_range = counting
    try:
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            report = watch.tick(dispatch=False)
            elapsed = time.perf_counter() - started
    finally:
        PrometheusProvider.query_range = original
    print(f"| {label} | {n:,} deployments × 3 triggers | {elapsed:.2f} s | {len(queries.captured_queries):,} | "
          f"{len(calls)} | {report['decisions']} |")
    return elapsed


def part1():
    print("| provider | watched | tick wall time | database queries | HTTP queries | decisions |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in (100, 1000):
        reset()
        envs, releases, _ = watched_deployments(n)
        push_builtin(envs, releases, timezone.now())
        one_tick("builtin (PostgreSQL)", n)
    exporter = Exporter()
    for version in [f"9.{i}.0" for i in range(1000)] + ["8.0.0"]:
        exporter.set_ratio(version, 0.01)
    with prometheus_scraping(exporter) as url:
        assert wait_for_series(url, 'http_requests_total{version="9.999.0"}')
        time.sleep(3)
        for n in (100, 1000):
            reset()
            envs, releases, _ = watched_deployments(n)
            for env in envs:
                MetricsConfig.objects.create(environment=env, kind="prometheus", url=url)
            one_tick("Prometheus", n)
    exporter.close()


def part2(runs=3, duration=30, tick=5):
    """The delay from the end of a sustained breach's duration to the first rollback step (builtin, 1 s buckets)."""
    settings.METRICS_BUILTIN_BUCKET_SECONDS = 1
    settings.MONITORING_TICK_SECONDS = tick
    delays = []
    for run in range(runs):
        reset()
        env, _ = Environment.objects.get_or_create(name="bench-delay", defaults={
            "display_name": "Bench delay", "tier": "production"})
        DeploymentTarget.objects.get_or_create(environment=env, defaults={
            "backend": "script", "config": {"commands": {"restore": "true"}}})
        release = Release.objects.create(version=f"9.9.{run}", type="patch", title="bench", status="deployed")
        dep = Deployment.objects.create(release=release, environment=env, strategy="rolling-update", backend="script",
                                        status="succeeded", previous_version="8.0.0", started_at=timezone.now(),
                                        finished_at=timezone.now())
        RollbackTrigger.objects.create(deployment=dep, metric="error_rate", operator=">", threshold=0.1,
                                       duration=duration)
        breach_start = time.time()
        next_tick = breach_start + (run * 1.7) % tick  # the breach starts anywhere within a tick
        fired_at = None
        while fired_at is None:
            metrics.ingest(environment_id=env.pk, samples=[{"metric": "error_rate", "value": 0.5,
                                                            "version": release.version}])
            now = time.time()
            if now >= next_tick:
                if watch.tick(dispatch=False)["actions"]:
                    engine.advance(dep.pk, dispatch=False)  # the rollback's first step, as a worker would
                    first = DeploymentStep.objects.filter(deployment=dep, phase="rollback").order_by("position").first()
                    fired_at = first.started_at.timestamp()
                next_tick += tick
            time.sleep(0.2)
        delays.append(fired_at - (breach_start + duration))
    print(f"\nbreach duration {duration} s, tick {tick} s: delay from the end of the duration to the first rollback "
          f"step over {runs} runs: max {max(delays):.2f} s, median {statistics.median(delays):.2f} s "
          f"(target ≤ tick + 5 s = {tick + 5} s)")


if __name__ == "__main__":
    if connection.vendor != "postgresql":
        sys.exit("run against PostgreSQL: set DATABASE_URL")
    part1()
    part2()
