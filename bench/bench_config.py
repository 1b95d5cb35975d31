"""Benchmark: configuration and leak scanning costs (run by hand; not part of `make test`).

    .venv/bin/python bench/bench_config.py [--n 300]

A throwaway embedded portal (SQLite under a temp VAR_DIR), in one process:
(a) the leak scanner (pmrelease.leaks.secret_kinds) on a release note of 30 lines (~2 KB) and on a one-line
    title — what every save of such text pays (target: < 10 ms for the note, < 1 ms for the title);
(b) config_save of a whole EnvironmentConfig (validation, scan of every value, diff, a new version, audit)
    (target: < 50 ms);
(c) GET /api/v1/environments/<name>/config with an environment key through Django's test client, 200 and 304
    (target: < 5 ms each, i.e. the API key and one query, not the scan).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")
os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="config-bench-")
os.environ.setdefault("SECRET_KEY", "bench-0123456789abcdefghijklmnopqrstuvwxyz0123456789")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

NOTE = "\n".join(f"- {kind}: {text} (#{4800 + i}, commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f{i:02d})"
                 for i, (kind, text) in enumerate([("feature", "send-time optimiser for the EU region"),
                                                   ("fix", "bounce webhook retried with backoff"),
                                                   ("security", "TLS 1.3 only on the SMTP relay")] * 10))


def timed(fn, n):
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"median_ms": statistics.median(samples), "p99_ms": samples[int(len(samples) * 0.99) - 1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from flags.services import api_key_create
    from pmrelease import leaks
    from releases import configuration
    from releases.models import Environment

    admin = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw-123456789")
    env = Environment.objects.create(name="staging", display_name="Staging", tier="staging")
    _, key = api_key_create(environment=env, kind="client")
    results = {
        f"leak scan, 30-line release note ({len(NOTE)} bytes)": timed(lambda: leaks.secret_kinds(NOTE), args.n),
        "leak scan, one-line title": timed(lambda: leaks.secret_kinds("Release 2.4.1: send-time optimiser"),
                                           args.n),
    }
    counter = iter(range(10**9))

    def save():
        i = next(counter)
        configuration.config_save(environment=env, by=admin, comment=f"bench {i}", document={
            "database": {"host": f"db{i}.staging.internal", "password": "vault://secret/staging/db#password"},
            "security": {"allowedOrigins": ["https://app.penguinmails.com"]},
            "features": {f"feature-{n}": {"enabled": n % 2 == 0, "percentage": 50} for n in range(20)}})

    results["config_save (whole document, 20 features)"] = timed(save, max(50, args.n // 3))
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    first = client.get("/api/v1/environments/staging/config", **headers)
    assert first.status_code == 200, first.content
    etag = first["ETag"]
    results["GET …/config (200)"] = timed(lambda: client.get("/api/v1/environments/staging/config", **headers),
                                          args.n)
    results["GET …/config (304, If-None-Match)"] = timed(
        lambda: client.get("/api/v1/environments/staging/config", HTTP_IF_NONE_MATCH=etag, **headers), args.n)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| | median ms | p99 ms |\n| --- | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['median_ms']:.2f} | {r['p99_ms']:.2f} |")


if __name__ == "__main__":
    main()
