"""Benchmark: every list, changelist, snapshot and publish stays as fast with years of history as on the first day.

    python bench/bench_scale.py --database postgres://postgres@127.0.0.1:5432/scale_bench \
        [--tiers 1000,10000,100000] [--incidents 100,1000] [--flags 100,1000,10000] [--repeat 7]

Drops and re-creates the named PostgreSQL database (its name must start with ``scale_``), migrates it and grows
one history through the tiers (``tests/scale_support.py``: releases with plans, deployments with steps and gate
results, audit events through the portal's own recorder). At each tier, in this process through Django's test
client (no network), the median of ``--repeat`` requests after one warm-up, and the queries each one ran:

- the API lists page 1 and a deep page (the middle of the history): releases (page numbers), deployments and
  audit events (cursor pages: a cursor at the middle row);
- the admin changelists of releases, deployments and audit events;

and after the last tier, EXPLAIN ANALYZE of the lists' own queries and the admin's bounded count and filter choices
against a full count and SELECT DISTINCT.

Then the status page: ``--incidents`` resolved incidents (three updates each) published in full once, then one
incident gets an update (through the service, which records what changed) and the publish the task makes after it
(``publishing.publish_pending``) is timed with the number of files it wrote. Last, with
``--flags``, ``bench/bench_flags_snapshots.py`` for each count (the one-flag snapshot update and the worst
latency while flags change; it needs ``wrk``).
"""
from __future__ import annotations

import argparse
import base64
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(os.path.abspath(__file__)).parents[1]
sys.path.insert(0, str(ROOT))


def recreate_database(url):
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.startswith("scale_"):
        raise SystemExit(f"refusing to drop {name!r}: the benchmark's database must be named scale_*")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url, var_dir):
    os.environ.update({
        "DATABASE_URL": url, "VAR_DIR": var_dir, "DJANGO_SETTINGS_MODULE": "pmrelease.settings",
        "SECRET_KEY": "bench-only-0123456789abcdefghijklmnopqrstuvwxyz0123456789",
        "SECURE_SSL_REDIRECT": "false", "SESSION_COOKIE_SECURE": "false", "CSRF_COOKIE_SECURE": "false",
        "ALLOWED_HOSTS": "testserver,localhost", "DEBUG": "false",
        "CELERY_BROKER_URL": "memory://",
    })
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def organisation():
    from django.contrib.auth import get_user_model

    from pmrelease.bootstrap import ensure_role_groups
    from releases.bootstrap import ensure_access_matrix
    from releases.demo import ENVIRONMENTS, LINKS
    from releases.models import Environment

    groups = ensure_role_groups()
    envs = {}
    for name, display, tier, position, purpose, infra, source, retention, backup in ENVIRONMENTS:
        envs[name] = Environment.objects.create(name=name, display_name=display, tier=tier, position=position,
                                                purpose=purpose, infrastructure=infra, data_source=source,
                                                data_retention=retention, data_backup=backup)
    for name, (promotes_to, attached_to, attachment) in LINKS.items():
        env = envs[name]
        env.promotes_to, env.attached_to, env.attachment = envs.get(promotes_to), envs.get(attached_to), attachment
        env.save()
    ensure_access_matrix(envs.values(), groups)
    User = get_user_model()

    def user(name, *roles, superuser=False):
        made = User.objects.create_user(username=name, email=f"{name}@example.com", password="bench-pw-123456",
                                        is_staff=True, is_superuser=superuser)
        made.groups.set([groups[r] for r in roles])
        return made

    return envs, {"admin": user("admin", superuser=True), "planner": user("planner", "operations"),
                  "approver": user("approver", "approvers"), "ops": user("ops", "operations")}


def cursor(position):
    """A DRF cursor (``rest_framework.pagination.CursorPagination.encode_cursor``) at ``position``."""
    return base64.b64encode(urlencode({"p": position}).encode("ascii")).decode("ascii")


def measure(client, url, repeat):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200
    return statistics.median(times) * 1000, len(captured)


def targets(tier):
    from pmrelease.models import AuditEvent
    from releases.models import Deployment

    middle = Deployment.objects.order_by("-created_at", "-id")[tier // 2]
    event = AuditEvent.objects.order_by("-id")[tier // 2]
    deep_page = max(tier // 50 // 2, 1)
    return [
        ("API releases page 1", "/api/v1/releases/"),
        ("API releases deep page (offset)", f"/api/v1/releases/?page={deep_page}"),
        ("API deployments page 1", "/api/v1/deployments/"),
        ("API deployments deep page (cursor)", "/api/v1/deployments/?" + urlencode(
            {"cursor": cursor(str(middle.created_at))})),
        ("API audit events page 1", "/api/v1/audit-events/"),
        ("API audit events deep page (cursor)", "/api/v1/audit-events/?" + urlencode(
            {"cursor": cursor(str(event.pk))})),
        ("admin releases", "/admin/releases/release/"),
        ("admin deployments", "/admin/releases/deployment/"),
        ("admin audit events", "/admin/pmrelease/auditevent/"),
        ("admin audit events, filtered by actor", "/admin/pmrelease/auditevent/?actor_username=ops"),
    ]


def grow(made, tier, envs, users):
    from django.db import connection

    from tests.scale_support import build_audit, build_deployments, build_releases, reporters

    ci = reporters(5)
    count = tier - made
    started = time.perf_counter()
    releases = build_releases(count, by=users["planner"], approver=users["approver"], environments=envs.values(),
                              start=made)
    build_deployments(releases, environments=envs.values(), by=users["ops"], users=ci)
    build_audit(count, actors=[users["ops"], users["approver"], *ci])
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return time.perf_counter() - started


def bench_lists(tiers, envs, users, repeat):
    from django.test import Client

    client = Client()
    client.force_login(users["admin"])
    results, made = {}, 0
    for tier in tiers:
        took = grow(made, tier, envs, users)
        made = tier
        print(f"-- {tier:,} releases, deployments and audit events (generated in {took:.0f} s)", flush=True)
        for label, url in targets(tier):
            ms, queries = measure(client, url, repeat)
            results[(label, tier)] = (ms, queries)
            print(f"  {label:42} {ms:8.1f} ms  {queries:3d} queries", flush=True)
    print("\n| list | " + " | ".join(f"{t:,}" for t in tiers) + f" | {tiers[-1]:,} / {tiers[0]:,} |")
    print("| --- | " + " | ".join("---:" for _ in tiers) + " | ---: |")
    for label, _ in targets(tiers[0]):
        cells = [f"{results[(label, t)][0]:.1f} ms ({results[(label, t)][1]} q)" for t in tiers]
        ratio = results[(label, tiers[-1])][0] / results[(label, tiers[0])][0]
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio:.2f}× |")
    explain_lists()


def explain_lists():
    """What the database does for the lists' own queries at the current size (EXPLAIN ANALYZE), and the admin's
    counts and filter choices against what they were (a full count, SELECT DISTINCT)."""
    from pmrelease.lists import distinct_values
    from pmrelease.models import AuditEvent
    from releases.models import Deployment, Environment, Release

    middle = Deployment.objects.order_by("-created_at", "-id")[Deployment.objects.count() // 2]
    visible = Deployment.objects.filter(environment__in=Environment.objects.all()).order_by("-created_at", "-id")
    plans = [
        ("releases page 1", Release.objects.order_by("-created_at")[:50]),
        ("deployments page 1 (cursor)", visible[:51]),
        ("deployments deep page (cursor)", visible.filter(created_at__lt=middle.created_at)[:51]),
        ("audit events page 1 (cursor)", AuditEvent.objects.order_by("-id")[:51]),
        ("audit events deep page (cursor)", AuditEvent.objects.filter(id__lt=AuditEvent.objects.count() // 2)
         .order_by("-id")[:51]),
        ("audit admin, filtered by actor", AuditEvent.objects.filter(actor_username="ops").order_by("-id")[:100]),
        ("release date hierarchy bounds", Release.objects.order_by("scheduled_for").values("scheduled_for")[:1]),
    ]
    print("\n| query | time | plan |\n| --- | ---: | --- |")
    for label, queryset in plans:
        plan = queryset.explain(analyze=True)
        took = re.search(r"Execution Time: ([\d.]+) ms", plan).group(1)
        indexes = sorted(set(re.findall(r"Scan(?: Backward)? using (\w+)", plan)))
        print(f"| {label} | {took} ms | {', '.join(indexes) or '-'}{' + Seq Scan' if 'Seq Scan' in plan else ''} |")
    calls = [
        ("audit admin count, bounded", lambda: AuditEvent.objects.all()[:10_001].count()),
        ("full COUNT(*) (before)", lambda: AuditEvent.objects.count()),
        ("actor choices by skip scan", lambda: distinct_values(AuditEvent, "actor_username")),
        ("SELECT DISTINCT actors (before)", lambda: list(
            AuditEvent.objects.order_by("actor_username").distinct().values_list("actor_username", flat=True))),
        ("action choices by skip scan", lambda: distinct_values(AuditEvent, "action")),
        ("SELECT DISTINCT actions (before)", lambda: list(
            AuditEvent.objects.order_by("action").distinct().values_list("action", flat=True))),
    ]
    for label, call in calls:
        call()
        times = []
        for _ in range(5):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        print(f"| {label} | {statistics.median(times) * 1000:.1f} ms | |")


def bench_publish(counts, users):
    import datetime as dt

    from django.utils import timezone

    from monitoring import tasks
    from monitoring.statuspage import incidents as incident_services
    from monitoring.statuspage import publishing
    from monitoring.statuspage.models import AffectedComponent, Component, Incident, IncidentUpdate

    tasks.publish_status_site.delay = lambda *args, **kwargs: None  # the benchmark runs the task's work itself
    incident_services.notify_later = lambda *args, **kwargs: None
    components = [Component.objects.get_or_create(name=f"Service {i}", defaults={"position": i})[0] for i in range(6)]
    made = 0
    print("\n| incidents | full publish | files | publish after one change | files rewritten |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for count in counts:
        now = timezone.now()
        rows = []
        for i in range(made, count):
            started = now - dt.timedelta(hours=24 * i + 3)  # one a day: 1,000 is under three years
            rows.append(Incident(name=f"Incident {i}", status="resolved", impact="minor", started_at=started,
                                 published_at=started, resolved_at=started + dt.timedelta(hours=1),
                                 created_at=started, updated_at=started + dt.timedelta(hours=1)))
        rows = Incident.objects.bulk_create(rows)
        AffectedComponent.objects.bulk_create([AffectedComponent(incident=r, component=components[r.pk % 6])
                                               for r in rows])
        IncidentUpdate.objects.bulk_create([
            IncidentUpdate(incident=r, status=status, body=f"{status.title()}: generated history",
                           created_at=r.started_at + dt.timedelta(minutes=20 * k),
                           display_at=r.started_at + dt.timedelta(minutes=20 * k))
            for r in rows for k, status in enumerate(("investigating", "monitoring", "resolved"))])
        made = count
        started = time.perf_counter()
        publishing.publish_site()
        full = time.perf_counter() - started
        files = sum(1 for p in publishing.site_root().rglob("*") if p.is_file())
        incident = Incident.objects.order_by("-started_at").first()
        incident_services.incident_add_update(incident=incident, body="A note after the fact.", by=users["admin"])
        started = time.perf_counter()
        rewritten = publishing.publish_pending(only_waiting=True)  # what the task queued after the change does
        after = time.perf_counter() - started
        print(f"| {count:,} | {full:.2f} s | {files:,} | {after * 1000:.0f} ms | {rewritten} |", flush=True)


def bench_flags(counts, duration):
    print("\n| flags | one-flag snapshot update | p99 without changes | p99 while changing |")
    print("| ---: | ---: | ---: | ---: |")
    for count in counts:
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_flags_snapshots.py"), "--flags", str(count),
                              "--duration", str(duration)], capture_output=True, text=True, cwd=ROOT).stdout
        incremental = re.search(r"incremental update .*?: ([\d.]+) ms", out)
        p99 = re.findall(r"p99\s+([\d.]+) ms", out)
        print(f"| {count:,} | {incremental.group(1) if incremental else '?'} ms | "
              f"{p99[0] if p99 else '?'} ms | {p99[1] if len(p99) > 1 else '?'} ms |", flush=True)
        if not incremental:
            print(out[-2000:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="postgres://…/scale_<name> (dropped and re-created)")
    parser.add_argument("--tiers", default="1000,10000,100000")
    parser.add_argument("--incidents", default="100,1000")
    parser.add_argument("--flags", default="", help="e.g. 100,1000,10000 (needs wrk)")
    parser.add_argument("--flag-duration", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU(s), load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    recreate_database(args.database)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as var_dir:
        setup_django(args.database, var_dir)
        envs, users = organisation()
        if args.tiers:
            bench_lists([int(t) for t in args.tiers.split(",")], envs, users, args.repeat)
        if args.incidents:
            bench_publish([int(c) for c in args.incidents.split(",")], users)
    if args.flags:
        bench_flags([int(c) for c in args.flags.split(",")], args.flag_duration)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
