"""Benchmark: deployment waiters held by ONE web process (run by hand; not part of `make test`).

Starts one `uvicorn pmrelease.asgi:application` process (one worker, one event loop) on a throwaway embedded portal
(SQLite under a temp VAR_DIR; or the DATABASE_URL given), opens N concurrent long-polls
`GET /api/v1/deployments/<id>/?wait=60` (If-None-Match: the current ETag) spread over D deployments, checks that
the same process still answers other requests meanwhile (GET /api/v1/releases/ latencies), then moves every
deployment to a terminal state at t0 (one UPDATE) and records, per waiter, when its answer arrived. Prints the
terminal-state-to-answer latency p50/p99/max and how many waiters got the new state.

    .venv/bin/python bench/bench_waiters.py [--waiters 200] [--deployments 10] [--json]
"""
import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def setup(env, deployments):
    """Migrate and create a superuser with a token, an environment, a release and the running deployments."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    script = f"""
import json
from django.contrib.auth import get_user_model
from pmrelease import tokens
from releases.models import Deployment, Environment, Release
user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw-bench-123456")
env = Environment.objects.create(name="benchenv", display_name="Bench", tier="development")
release = Release.objects.create(version="9.9.9", type="minor", title="bench", created_by=user)
ids = [Deployment.objects.create(release=release, environment=env, strategy="canary", backend="simulation",
                                 status="running").pk for _ in range({deployments})]
print(json.dumps({{"key": tokens.issue_token(user=user, by="bench"), "ids": ids}}))
"""
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def finish_all(env, ids):
    """Every deployment to succeeded in one UPDATE; returns the wall-clock time of the commit."""
    script = f"""
import time
from releases.models import Deployment
Deployment.objects.filter(pk__in={ids!r}).update(status="succeeded")
print(time.time())
"""
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


async def run(client, key, ids, waiters):
    auth = {"Authorization": f"Bearer {key}"}
    etags = {}
    for dep_id in ids:
        response = await client.get(f"/api/v1/deployments/{dep_id}/", headers=auth)
        response.raise_for_status()
        etags[dep_id] = response.headers["ETag"]
    arrivals = []

    async def waiter(i):
        dep_id = ids[i % len(ids)]
        response = await client.get(f"/api/v1/deployments/{dep_id}/", params={"wait": "60"},
                                    headers={**auth, "If-None-Match": etags[dep_id]})
        arrivals.append((time.time(), response.status_code, response.json().get("status")))

    tasks = [asyncio.create_task(waiter(i)) for i in range(waiters)]
    await asyncio.sleep(3)  # every waiter connected and parked
    others = []
    for _ in range(20):  # the same process answers other requests meanwhile
        started = time.perf_counter()
        response = await client.get("/api/v1/releases/", headers=auth)
        others.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    early = len(arrivals)
    if early:
        print("answered early:", arrivals[:5], file=sys.stderr)
    return tasks, arrivals, others, early


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--waiters", type=int, default=200)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="pmr-bench-waiters-")
    env = {**os.environ, "VAR_DIR": tmp, "SECRET_KEY": "bench-only-0123456789abcdefghijklmnopqrstuvwxyz",
           "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1,localhost", "SECURE_SSL_REDIRECT": "false"}
    data = setup(env, args.deployments)
    port = free_port()
    server = subprocess.Popen([str(BIN / "uvicorn"), "pmrelease.asgi:application", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1", "--log-level", os.environ.get("BENCH_LOG_LEVEL", "warning"),
                               "--limit-concurrency", "2000", "--backlog", "4096"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)

        async def scenario():
            limits = httpx.Limits(max_connections=args.waiters + 20, max_keepalive_connections=args.waiters + 20)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=90) as client:
                tasks, arrivals, others, early = await run(client, data["key"], data["ids"], args.waiters)
                t0 = await asyncio.to_thread(finish_all, env, data["ids"])
                await asyncio.wait_for(asyncio.gather(*tasks), 30)
            return t0, arrivals, others, early

        t0, arrivals, others, early = asyncio.run(scenario())
    finally:
        server.terminate()
        server.wait(10)
    latencies = [(at - t0) * 1000 for at, _, _ in arrivals]
    result = {
        "waiters": args.waiters, "deployments": args.deployments, "answered_before_terminal": early,
        "got_terminal_state": sum(1 for _, code, status in arrivals if code == 200 and status == "succeeded"),
        "latency_ms_p50": round(statistics.median(latencies), 1), "latency_ms_p99": round(percentile(latencies, 99), 1),
        "latency_ms_max": round(max(latencies), 1),
        "other_requests_ms_p50": round(statistics.median(others), 1), "other_requests_ms_max": round(max(others), 1),
        "poll_seconds": float(env.get("DEPLOYMENT_WAIT_POLL_SECONDS", 0.2)),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
