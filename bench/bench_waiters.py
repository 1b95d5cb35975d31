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


async def raw_get(port, target, headers):
    """One GET on its own connection, read to the end of its body: (status, body bytes). A minimal HTTP/1.1
    client, so that the load generator's own parsing (httpx's pool holding 200 connections took ~1 s to hand
    over 200 answers the server had written within 0.45 s) is not what the benchmark measures."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(":", 1) for line in header_lines if ":" in line)
        fields = {name.strip().lower(): value.strip() for name, value in fields.items()}
        if "content-length" in fields:
            body = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
        else:
            body = await reader.read()
        return int(status_line.split()[1]), body
    finally:
        writer.close()


async def run(client, port, key, ids, waiters):
    auth = {"Authorization": f"Bearer {key}"}
    etags = {}
    for dep_id in ids:
        response = await client.get(f"/api/v1/deployments/{dep_id}/", headers=auth)
        response.raise_for_status()
        etags[dep_id] = response.headers["ETag"]
    arrivals = []

    async def waiter(i):
        dep_id = ids[i % len(ids)]
        code, body = await raw_get(port, f"/api/v1/deployments/{dep_id}/?wait=60",
                                   {**auth, "If-None-Match": etags[dep_id]})
        arrivals.append((time.time(), code, json.loads(body).get("status")))

    tasks = [asyncio.create_task(waiter(i)) for i in range(waiters)]
    await asyncio.sleep(3)  # every waiter connected and parked
    others = []
    for _ in range(20):  # the same process answers other requests meanwhile
        started = time.perf_counter()
        response = await client.get("/api/v1/releases/", headers=auth)
        others.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    early = len(arrivals)
    connections = await asyncio.to_thread(database_connections)
    if early:
        print("answered early:", arrivals[:5], file=sys.stderr)
    return tasks, arrivals, others, early, connections


def database_connections():
    """How many connections PostgreSQL holds for the benchmark's database (None on SQLite)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return None
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND pid <> pg_backend_pid()").fetchone()[0]


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
                tasks, arrivals, others, early, connections = await run(client, port, data["key"], data["ids"], args.waiters)
                t0 = await asyncio.to_thread(finish_all, env, data["ids"])
                await asyncio.wait_for(asyncio.gather(*tasks), 30)
            return t0, arrivals, others, early, connections

        t0, arrivals, others, early, connections = asyncio.run(scenario())
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
        "database_connections_while_parked": connections,
        "poll_seconds": float(env.get("DEPLOYMENT_WAIT_POLL_SECONDS", 0.2)),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
