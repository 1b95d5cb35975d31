"""Benchmark: OFREP single-flag and bulk (100 flags) requests under gunicorn, against an empty Django JSON view
served the same way in the same run (the framework's own limit on this machine).

    python bench/bench_flags_http.py [--duration 10] [--connections 32] [--workers 2] [--threads 2]

Needs ``wrk`` (``apt-get install -y wrk``). Sets up a throw-away SQLite database under a temporary VAR_DIR
with 100 flags in one environment (a flexibleRollout with two constraints among them) and a client key, then
runs gunicorn (sync workers, the same middleware stack as production) with this module as the URL
configuration: ``/bench/empty`` (an empty JSON view) and the portal's own routes. Prints req/s, p50 and p99
for each endpoint and the ratio of OFREP to the empty view.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(os.path.abspath(__file__)).parents[1]
sys.path.insert(0, str(ROOT))

# --- when imported by gunicorn: the WSGI application with the extra empty view ------------------------------
if os.environ.get("FLAGS_BENCH_SERVER") == "1":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    settings.ROOT_URLCONF = "bench.bench_flags_http"
    application = get_wsgi_application()  # django.setup() first: the portal's URLs import the admin

    from django.http import JsonResponse
    from django.urls import include, path

    def empty(request):
        return JsonResponse({})

    urlpatterns = [path("bench/empty", empty), path("", include("pmrelease.urls"))]

FLAG = "new-checkout"
LUA = """
wrk.method = "{method}"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def _env(var_dir):
    return dict(
        os.environ, VAR_DIR=str(var_dir), DEBUG="false", SECRET_KEY="bench-" + "x" * 60, ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false", SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false",
        DATABASE_URL=f"sqlite:///{var_dir}/bench.sqlite3", LOG_LEVEL="WARNING", FLAGS_USAGE_FLUSH_SECONDS="30",
    )


SETUP = r"""
import django, os
django.setup()
from releases.models import Environment
from flags import services
env = Environment.objects.create(name="production", display_name="Production", tier="production")
constraints = [{"contextName": "environment", "operator": "IN", "values": ["production", "staging"]},
               {"contextName": "plan", "operator": "STR_STARTS_WITH", "values": ["pro", "team"], "caseInsensitive": True}]
flag = services.flag_create(key="new-checkout")
services.flag_state_update(state=services.state_for(flag, env), enabled=True, strategies=[
    {"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "default", "groupId": "new-checkout"},
     "constraints": constraints}])
for i in range(99):
    other = services.flag_create(key=f"flag-{i:02d}")
    services.flag_state_update(state=services.state_for(other, env), enabled=i % 3 != 0, strategies=[
        {"name": "flexibleRollout", "parameters": {"rollout": str(i), "stickiness": "default", "groupId": f"g{i}"},
         "constraints": constraints[: i % 3]}])
_key, raw = services.api_key_create(environment=env, kind="client", rate_limit=1000000)
print("KEY=" + raw)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parse_wrk(output):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = {}
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        value, unit = float(match.group(1)), match.group(2)
        latency[pct] = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rps, latency["50"], latency["99"], int(errors.group(1)) if errors else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (1: sync worker)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    var_dir = Path(tempfile.mkdtemp(prefix="flags-bench-"))
    env = _env(var_dir)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run([python, "-c", SETUP], cwd=ROOT, env=dict(env, DJANGO_SETTINGS_MODULE="pmrelease.settings"),
                         check=True, capture_output=True, text=True).stdout
    key = re.search(r"KEY=(\S+)", out).group(1)
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(python).parent / "gunicorn"), "bench.bench_flags_http:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(args.workers), "--threads", str(args.threads), "--log-level", "warning",
         "--backlog", "2048"],
        cwd=ROOT, env=dict(env, FLAGS_BENCH_SERVER="1"), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        body = json.dumps({"context": {"targetingKey": "user-42", "plan": "pro", "environment": "production"}})
        cases = [
            ("empty Django JSON view", "GET", "/bench/empty", ""),
            ("OFREP single flag", "POST", f"/ofrep/v1/evaluate/flags/{FLAG}", body),
            ("OFREP bulk (100 flags)", "POST", "/ofrep/v1/evaluate/flags", body),
        ]
        results = {}
        for label, method, url, payload in cases:
            script = var_dir / f"{abs(hash(label))}.lua"
            script.write_text(LUA.format(method=method, body=payload, key=key))
            # warm every worker (snapshot build, key lookup) before measuring
            subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-s", str(script), base + url], capture_output=True)
            run = subprocess.run(["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{args.duration}s",
                                  "--latency", "-s", str(script), base + url], capture_output=True, text=True)
            results[label] = _parse_wrk(run.stdout)
        print(f"gunicorn {args.workers} worker(s) x {args.threads} thread(s), wrk {args.connections} connections, "
              f"{args.duration}s each, {os.cpu_count()} CPU(s)")
        print(f"{'endpoint':28} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for label, (rps, p50, p99, errors) in results.items():
            print(f"{label:28} {rps:10.0f} {p50:8.2f} {p99:8.2f} {errors:7d}")
        empty = results["empty Django JSON view"][0]
        single = results["OFREP single flag"][0]
        print(f"OFREP single / empty view: {single / empty:.0%}" if empty else "empty view: no successful requests")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
