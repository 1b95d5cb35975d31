"""Benchmark: snapshot updates at 10,000 flags — a one-flag change costs one flag, and requests never wait for it.

    python bench/bench_flags_snapshots.py [--flags 10000] [--duration 20] [--connections 32] [--workers 2]

Sets up a throw-away SQLite database under a temporary VAR_DIR with ``--flags`` flags in one environment (loaded
with ``import_flags``: a flexibleRollout with a constraint on each, a segment on every tenth), then measures

1. in one process: a full build of the environment's snapshot, and the incremental update after one flag changed
   (the work a one-flag change costs each process), median of 5;
2. under gunicorn (the edge as its own process, sync workers) with wrk on OFREP single flag: the latency without
   changes, then while another process toggles one flag every second (each change reaches every worker through
   the refresher thread, beside the live snapshot); p99 of both reported (target during changes: <= 50 ms).

Needs ``wrk`` (``apt-get install -y wrk``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(os.path.abspath(__file__)).parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_flags_http import LUA, Server, _parse_wrk  # noqa: E402

MEASURE = r"""
import django, statistics, time
django.setup()
from flags import services, snapshots
from flags.models import FeatureFlag
from releases.models import Environment
env = Environment.objects.get(name="production")
times = []
for _ in range(5):
    snapshots.reset()
    started = time.perf_counter()
    entry = snapshots._full(env.pk)
    times.append(time.perf_counter() - started)
print("FULL=%.4f" % statistics.median(times))
snapshots._entries[env.pk] = entry
steps = []
for i in range(5):
    state = services.state_for(FeatureFlag.objects.get(key=f"flag-{i:05d}"), env)
    services.flag_toggle(state=state, enabled=not state.enabled)
    entry = snapshots._entries[env.pk]
    started = time.perf_counter()
    fresh = snapshots._incremental(entry)
    steps.append(time.perf_counter() - started)
    snapshots._entries[env.pk] = fresh
    last = entry.names[-1]  # untouched flags keep their compiled and serialised forms
    assert fresh.revision == entry.revision + 1 and fresh.feature_json[last] is entry.feature_json[last]
print("INCREMENTAL=%.4f" % statistics.median(steps))
print("FLAGS=%d" % len(fresh.features))
"""

TOGGLE = r"""
import django, sys, time
django.setup()
from flags import services
from flags.models import FeatureFlag
from releases.models import Environment
env = Environment.objects.get(name="production")
state = services.state_for(FeatureFlag.objects.get(key="flag-00001"), env)
count = int(sys.argv[1])
for _ in range(count):
    state = services.flag_toggle(state=state, enabled=not state.enabled)
    time.sleep(1.0)
print("TOGGLED=%d" % count)
"""


def _document(count):
    features = []
    for i in range(count):
        strategy = {"name": "flexibleRollout", "parameters": {"rollout": str(i % 100), "stickiness": "default",
                                                              "groupId": f"g{i}"},
                    "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro", "team"]}]}
        if i % 10 == 0:
            strategy["segments"] = [1]
        features.append({"name": f"flag-{i:05d}", "type": "release", "enabled": i % 3 != 0, "strategies": [strategy]})
    return {"version": 2, "features": features, "segments": [
        {"id": 1, "name": "europe", "constraints": [{"contextName": "region", "operator": "STR_STARTS_WITH",
                                                      "values": ["eu-"]}]}]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    var_dir = Path(tempfile.mkdtemp(prefix="flags-snapshots-bench-"))
    env = dict(os.environ, VAR_DIR=str(var_dir), DEBUG="false", SECRET_KEY="bench-" + "x" * 60,
               ALLOWED_HOSTS="127.0.0.1", SECURE_SSL_REDIRECT="false", DATABASE_URL=f"sqlite:///{var_dir}/b.sqlite3",
               LOG_LEVEL="WARNING", FLAGS_USAGE_FLUSH_SECONDS="30", DJANGO_SETTINGS_MODULE="pmrelease.settings")
    python = sys.executable
    try:
        subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([python, "-c", "import django; django.setup(); from releases.models import Environment; "
                        "Environment.objects.create(name='production', display_name='Production', tier='production')"],
                       cwd=ROOT, env=env, check=True)
        doc = var_dir / "flags.json"
        doc.write_text(json.dumps(_document(args.flags)))
        started = time.monotonic()
        subprocess.run([python, "manage.py", "import_flags", "--environment", "production", str(doc)], cwd=ROOT,
                       env=env, check=True, capture_output=True)
        imported = time.monotonic() - started
        out = subprocess.run([python, "-c", MEASURE], cwd=ROOT, env=env, check=True, capture_output=True,
                             text=True).stdout
        full = float(re.search(r"FULL=([\d.]+)", out).group(1))
        incremental = float(re.search(r"INCREMENTAL=([\d.]+)", out).group(1))
        key = subprocess.run([python, "manage.py", "create_api_key", "--environment", "production", "--kind",
                              "client", "--rate-limit", "1000000"], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        script = var_dir / "ofrep.lua"
        body = json.dumps({"context": {"targetingKey": "user-42", "plan": "pro"}})
        script.write_text(LUA.format(method="POST", body=body, auth=f"Bearer {key}"))
        edge = Server("flags.edge:application", env, args.workers, 1)
        url = f"{edge.base}/ofrep/v1/evaluate/flags/flag-00002"
        try:
            # warm both workers: each builds the 10,000-flag snapshot once, on its first request
            for _ in range(3):
                subprocess.run(["wrk", "-t2", "-c16", "-d5s", "-s", str(script), url], capture_output=True)

            def wrk():
                run = subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
                                      "-s", str(script), url], capture_output=True, text=True)
                return _parse_wrk(run.stdout)

            quiet = wrk()
            toggler = {}

            def toggle():
                toggler["out"] = subprocess.run([python, "-c", TOGGLE, str(args.duration - 2)], cwd=ROOT, env=env,
                                                capture_output=True, text=True).stdout

            thread = threading.Thread(target=toggle)
            thread.start()
            changing = wrk()
            thread.join()
        finally:
            edge.stop()
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
    print(f"{args.flags} flags, 1 environment, {os.cpu_count()} CPU(s), load average now: {os.getloadavg()[0]:.2f}")
    print(f"import_flags of {args.flags} flags: {imported:.1f} s")
    print(f"full build of the snapshot (one process, median of 5): {full * 1000:.0f} ms")
    print(f"incremental update after a one-flag change (median of 5): {incremental * 1000:.1f} ms (target <= 50 ms)")
    print(f"gunicorn {args.workers} sync workers, wrk {args.connections} connections, {args.duration}s, OFREP single:")
    for label, (rps, p50, p99, errors) in (("no changes", quiet), ("one flag toggled every second", changing)):
        print(f"  {label:30} {rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  errors {errors}")
    made = re.search(r"TOGGLED=(\d+)", toggler.get("out", ""))
    print(f"  changes made meanwhile: {made.group(1) if made else 'none (the toggling process failed)'}")


if __name__ == "__main__":
    main()
