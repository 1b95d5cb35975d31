"""Benchmark: a deployment's terminal state to its signed webhook's delivery (run by hand; not in `make test`).

A throwaway embedded portal (SQLite and the filesystem broker under a temp VAR_DIR; or the DATABASE_URL/REDIS_URL
given), one Celery worker process (`--concurrency 2`), a local receiver that checks each signature and notes the
arrival time, and a webhook channel subscribed to deployment.succeeded. N deployment.succeeded events are recorded
one after another (each in its own transaction, as the engine does when a deployment ends), t0 at each commit;
latency = t0 → the receiver's arrival. Prints p50/p99/max.

    .venv/bin/python bench/bench_webhooks.py [--events 50]
"""
import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="pmr-bench-webhooks-")
    os.environ.update({"VAR_DIR": tmp, "SECRET_KEY": "bench-only-0123456789abcdefghijklmnopqrstuvwxyz",
                       "DELIVERY_WEBHOOK_ALLOW_PRIVATE": "true", "DJANGO_SETTINGS_MODULE": "pmrelease.settings"})
    sys.path.insert(0, str(ROOT))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    arrivals, bad = {}, []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fields = dict(p.split("=", 1) for p in self.headers["X-PMR-Signature"].split(","))
            mac = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mac, fields["v1"]):
                bad.append(self.headers["X-PMR-Delivery"])
            arrivals[json.loads(body)["id"]] = time.time()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from pmrelease import delivery

    admin = get_user_model().objects.create_superuser("bench", "b@example.com", "pw-bench-123456")
    channel = delivery.channel_save(data={"name": "bench", "kind": "webhook", "secret": SECRET,
                                          "url": f"http://127.0.0.1:{server.server_port}/hook"}, by=admin)
    delivery.subscription_save(channel=channel, event="deployment.succeeded", by=admin)
    worker = subprocess.Popen([str(Path(sys.executable).parent / "celery"), "-A", "pmrelease", "worker", "-l",
                               "warning", "--concurrency", "2", "-n", f"bench-{os.getpid()}@%h"], cwd=ROOT,
                              env=os.environ.copy())
    try:
        with transaction.atomic():  # warm-up: wait until the worker delivers a first event
            delivery.notify(event="deployment.succeeded", environment="staging", key="warm-up", title="t", body="b")
        deadline = time.monotonic() + 120
        while "warm-up" not in arrivals and time.monotonic() < deadline:
            time.sleep(0.1)
        sent = {}
        for i in range(args.events):
            key = f"bench-{i}"
            with transaction.atomic():
                delivery.notify(event="deployment.succeeded", environment="staging", key=key, title="t", body="b",
                                data={"deployment": i})
            sent[key] = time.time()
            time.sleep(0.1)
        deadline = time.monotonic() + 60
        while len(arrivals) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(20)
        server.shutdown()
    latencies = [(arrivals[k] - t) * 1000 for k, t in sent.items() if k in arrivals]
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    print(json.dumps({"events": len(sent), "delivered": len(latencies), "bad_signatures": len(bad),
                      "latency_ms_p50": round(statistics.median(latencies), 1), "latency_ms_p99": round(p99, 1),
                      "latency_ms_max": round(max(latencies), 1)}))


if __name__ == "__main__":
    main()
