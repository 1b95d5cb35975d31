"""Benchmark: the flag edge under gunicorn against a raw WSGI callable returning the same bytes, and against an
empty Django JSON view, under the same gunicorn settings in the same run.

    python bench/bench_flags_http.py [--duration 10] [--connections 32] [--workers 2] [--runs 3]

Needs ``wrk`` (``apt-get install -y wrk``). Sets up a throw-away SQLite database under a temporary VAR_DIR with
100 flags in one environment (a flexibleRollout with two constraints among them) and a client key, and runs,
each with the same gunicorn settings (sync workers):

- the portal (``pmrelease.wsgi``, the edge mounted in front of Django) plus ``/bench/empty``, an empty Django
  JSON view routed through Django's whole middleware stack: the empty view, and OFREP single / bulk and client
  features answered by the edge inside the portal;
- the edge as its own process (``flags.edge:application``): OFREP single, bulk (100 flags), client features;
- a raw WSGI callable returning the bytes and headers of the edge's OFREP single answer.

The servers run side by side (an idle sync worker costs nothing); each case is measured ``--runs`` times, the
cases interleaved so that a change in the machine's load hits them alike, after a warm-up that reaches every
worker; the run with the median req/s is reported with its p50 / p99. Prints the ratio of the edge's OFREP single flag to the raw callable (target ≥ 75 %, p99 ≤ 10 ms).
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
import urllib.request
from pathlib import Path

ROOT = Path(os.path.abspath(__file__)).parents[1]
sys.path.insert(0, str(ROOT))

# --- when imported by gunicorn: the portal with the extra empty view, or the raw callable ---------------------
if os.environ.get("FLAGS_BENCH_SERVER") == "portal":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")
    from django.conf import settings

    settings.ROOT_URLCONF = "bench.bench_flags_http"
    from django.http import JsonResponse
    from django.urls import include, path

    from pmrelease.wsgi import application  # noqa: F401  (the edge mounted in front of Django)

    def empty(request):
        return JsonResponse({})

    urlpatterns = [path("bench/empty", empty), path("", include("pmrelease.urls"))]

if os.environ.get("FLAGS_BENCH_SERVER") == "raw":
    _RAW = json.loads(os.environ["FLAGS_BENCH_RAW"])
    _RAW_BODY = _RAW["body"].encode()
    _RAW_HEADERS = [(k, v) for k, v in _RAW["headers"]]

    def raw(environ, start_response):
        """The floor: no parsing, no lookup, the edge's answer as fixed bytes (it reads the body as the edge does)."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        start_response("200 OK", _RAW_HEADERS)
        return [_RAW_BODY]

FLAG = "new-checkout"
LUA = """
wrk.method = "{method}"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{auth}"
wrk.headers["Unleash-Client-Spec"] = "5.0.0"
"""


def _env(var_dir):
    return dict(
        os.environ, VAR_DIR=str(var_dir), DEBUG="false", SECRET_KEY="bench-" + "x" * 60, ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false", SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false",
        DATABASE_URL=f"sqlite:///{var_dir}/bench.sqlite3", LOG_LEVEL="WARNING", FLAGS_USAGE_FLUSH_SECONDS="30",
        DJANGO_SETTINGS_MODULE="pmrelease.settings",
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


class Server:
    def __init__(self, app, env, workers, threads):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self.process = subprocess.Popen(
            [gunicorn, app, "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), "--threads", str(threads),
             "--log-level", "warning", "--backlog", "2048"], cwd=ROOT, env=env, start_new_session=True)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"{app} did not start")

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=15)


def _script(label, method, payload, auth, var_dir):
    script = var_dir / f"{abs(hash(label))}.lua"
    script.write_text(LUA.format(method=method, body=payload, auth=auth))
    return script


def _wrk(args, script, url, *, warm=False):
    if warm:  # reach every worker (snapshot build, key table) before measuring
        subprocess.run(["wrk", "-t1", "-c8", "-d2s", "-s", str(script), url], capture_output=True)
        return None
    run = subprocess.run(["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{args.duration}s",
                          "--latency", "-s", str(script), url], capture_output=True, text=True)
    return _parse_wrk(run.stdout)


def _fetch(url, body, auth):
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": auth})
    with urllib.request.urlopen(request) as response:
        return response.read().decode(), [(k, v) for k, v in response.getheaders()
                                          if k.lower() not in ("date", "server", "connection", "x-request-id")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (1: sync worker)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="runs per case (the median is reported)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    load_before = os.getloadavg()[0]
    var_dir = Path(tempfile.mkdtemp(prefix="flags-bench-"))
    env = _env(var_dir)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run([python, "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    key = re.search(r"KEY=(\S+)", out).group(1)
    body = json.dumps({"context": {"targetingKey": "user-42", "plan": "pro", "environment": "production"}})
    bearer = f"Bearer {key}"
    servers = []
    try:
        portal = Server("bench.bench_flags_http:application", dict(env, FLAGS_BENCH_SERVER="portal"), args.workers,
                        args.threads)
        servers.append(portal)
        edge = Server("flags.edge:application", env, args.workers, args.threads)
        servers.append(edge)
        answer, headers = _fetch(f"{edge.base}/ofrep/v1/evaluate/flags/{FLAG}", body, bearer)
        raw = Server("bench.bench_flags_http:raw", dict(env, FLAGS_BENCH_SERVER="raw", FLAGS_BENCH_RAW=json.dumps(
            {"body": answer, "headers": headers})), args.workers, args.threads)
        servers.append(raw)
        cases = [
            ("raw WSGI callable, same bytes", raw, "POST", f"/ofrep/v1/evaluate/flags/{FLAG}", body, bearer),
            ("edge: OFREP single flag", edge, "POST", f"/ofrep/v1/evaluate/flags/{FLAG}", body, bearer),
            ("edge: OFREP bulk (100 flags)", edge, "POST", "/ofrep/v1/evaluate/flags", body, bearer),
            ("edge: client features", edge, "GET", "/api/client/features", "", key),
            ("empty Django JSON view", portal, "GET", "/bench/empty", "", bearer),
            ("portal: OFREP single flag", portal, "POST", f"/ofrep/v1/evaluate/flags/{FLAG}", body, bearer),
            ("portal: OFREP bulk (100 flags)", portal, "POST", "/ofrep/v1/evaluate/flags", body, bearer),
            ("portal: client features", portal, "GET", "/api/client/features", "", key),
        ]
        scripts = {label: _script(label, method, payload, auth, var_dir) for label, _s, method, _u, payload, auth
                   in cases}
        for label, server, _m, url, _p, _a in cases:
            _wrk(args, scripts[label], server.base + url, warm=True)
        measured = {label: [] for label, *_ in cases}
        for _ in range(args.runs):  # interleaved: a change in the machine's load hits every case alike
            for label, server, _m, url, _p, _a in cases:
                measured[label].append(_wrk(args, scripts[label], server.base + url))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(var_dir, ignore_errors=True)
    results = {}
    for label, runs in measured.items():
        runs.sort(key=lambda r: r[0])
        results[label] = runs[len(runs) // 2] + ([r[0] for r in runs],)
    print(f"gunicorn {args.workers} worker(s) x {args.threads} thread(s), wrk {args.connections} connections, "
          f"{args.duration}s per run, median of {args.runs} runs, {os.cpu_count()} CPU(s), "
          f"load average before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(f"{'endpoint':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  runs (req/s)")
    for label, (rps, p50, p99, errors, runs) in results.items():
        print(f"{label:34} {rps:9.0f} {p50:8.2f} {p99:8.2f} {errors:7d}  {', '.join(f'{r:.0f}' for r in runs)}")
    raw_rps = results["raw WSGI callable, same bytes"][0]
    edge_rps, _, edge_p99 = results["edge: OFREP single flag"][:3]
    print(f"edge OFREP single / raw WSGI callable: {edge_rps / raw_rps:.0%} (target >= 75 %), p99 {edge_p99:.2f} ms "
          "(target <= 10 ms)")
    print(f"empty Django view / raw WSGI callable: {results['empty Django JSON view'][0] / raw_rps:.0%}")
    print(f"edge OFREP single / empty Django view: {edge_rps / results['empty Django JSON view'][0]:.0%}")


if __name__ == "__main__":
    main()
