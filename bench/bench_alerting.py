"""Alerting and delivery benchmark: what ``delivery.notify`` adds to the path that calls it (a deployment's end,
say), and one beat evaluation of N alert rules against a real Prometheus.

Run by hand (not part of `make test`), against PostgreSQL and Redis, with Debian's `prometheus` installed:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pmbench REDIS_URL=redis://127.0.0.1:6379/10 \\
        SECRET_KEY=bench-0123456789abcdefghijklmnopqrstuvwxyz0123 .venv/bin/python bench/bench_alerting.py

Part 1: 10 channels subscribed to every event; N events notified, each in its own transaction as a service
would (rows written, the hand-over to the broker after commit). No worker runs: the network is never on this
path, which is the point. Part 2: N rules (half matching, half not) on one environment whose provider is a
Prometheus scraping a fixture exporter every second; ``evaluate_all`` timed, HTTP queries counted.
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

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from monitoring.alerting import services as alerting  # noqa: E402
from monitoring.metrics.prometheus import PrometheusProvider  # noqa: E402
from monitoring.models import AlertRule, MetricsConfig  # noqa: E402
from pmrelease import delivery  # noqa: E402
from pmrelease.models import Channel, Notification  # noqa: E402
from releases.models import Environment  # noqa: E402
from tests.monitoring.test_alerting import GaugeExporter  # noqa: E402
from tests.prometheus_support import prometheus_scraping, wait_for_series  # noqa: E402


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def part1(admin, events=500):
    Channel.objects.filter(name__startswith="bench-").delete()
    for i in range(10):
        channel = delivery.channel_save(data={"name": f"bench-{i}", "url": f"json://127.0.0.1:9/bench{i}"}, by=admin)
        delivery.subscription_save(channel=channel, event="*", by=admin)
    timings = []
    for i in range(events):
        started = time.perf_counter()
        with transaction.atomic():
            delivery.notify(event="deployment.succeeded", environment="bench", title=f"bench {i}", body="b",
                            key=f"bench-{time.time_ns()}-{i}")
        timings.append((time.perf_counter() - started) * 1000)
    made = Notification.objects.filter(title__startswith="bench ").count()
    print(f"part 1: {events} events × 10 channels ({made} notifications): notify median "
          f"{statistics.median(timings):.2f} ms, p99 {percentile(timings, 99):.2f} ms, max {max(timings):.2f} ms")
    Notification.objects.filter(title__startswith="bench ").delete()
    Channel.objects.filter(name__startswith="bench-").delete()


def part2(admin, counts=(20, 200)):
    exporter = GaugeExporter()
    exporter.value = 500
    with prometheus_scraping(exporter) as url:
        assert wait_for_series(url, "pmr_queue_depth > 100")
        env, _ = Environment.objects.get_or_create(name="bench-alerts", defaults={"display_name": "Bench alerts",
                                                                                   "position": 99})
        MetricsConfig.objects.update_or_create(environment=env, defaults={"kind": "prometheus", "url": url})
        AlertRule.objects.filter(enabled=True).exclude(environment=env).update(enabled=False)
        for n in counts:
            AlertRule.objects.filter(environment=env).delete()
            for i in range(n):
                threshold = 100 if i % 2 == 0 else 1000  # half match
                alerting.rule_save(environment=env, by=admin, data={
                    "name": f"rule {i}", "condition": f'pmr_queue_depth{{queue="mail"}} > {threshold + i}',
                    "severity": "warning", "cooldown": 5})
            queries = {"http": 0}
            original = PrometheusProvider._get

            def counting(self, endpoint, params, original=original, queries=queries):
                queries["http"] += 1
                return original(self, endpoint, params)

            PrometheusProvider._get = counting
            try:
                walls = []
                for round_ in range(3):
                    now = timezone.now() + dt.timedelta(minutes=10 * round_)
                    with CaptureQueriesContext(connection) as captured:
                        started = time.perf_counter()
                        changes = alerting.evaluate_all(now=now)
                        walls.append(time.perf_counter() - started)
                    print(f"part 2: {n} rules, round {round_ + 1}: {walls[-1]:.2f} s, {len(changes)} changed, "
                          f"{len(captured)} database queries, {queries['http']} HTTP queries")
                    queries["http"] = 0
            finally:
                PrometheusProvider._get = original
        AlertRule.objects.filter(environment=env).delete()
    exporter.close()


def main():
    call_command("migrate", verbosity=0)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    admin = get_user_model().objects.filter(username="bench-admin").first() or \
        get_user_model().objects.create_superuser("bench-admin", "bench@example.com", "bench-pw-123456789")
    part1(admin)
    part2(admin)


if __name__ == "__main__":
    main()
