"""Benchmark: serving the public status page under load (run by hand; not part of `make test`).

(a) Django under gunicorn: /status/ and /status/api/v2/summary.json (served from the publish directory) as a
    ratio to an empty Django JSON view served by the same gunicorn in the same run (target >= 80 %).
(b) nginx (Debian package) serving the publish directory with deploy/nginx-status.conf, as a ratio to the
    same nginx serving an unrelated static file of the same size (target >= 95 %).

wrk at 32 connections against 127.0.0.1 only. Usage:

    .venv/bin/python bench/bench_status_serving.py [--duration 10] [--workers 4] [--threads 4]

It builds a throwaway embedded portal (SQLite under a temp VAR_DIR), loads the demo (seed_demo publishes the
status site), then starts gunicorn and nginx on free local ports and prints a table (and --json).
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    match = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", text)
    value, unit = float(match.group(1)), match.group(2)
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {"rps": rps, "p99_ms": p99_ms, "non_2xx": int(errors.group(1)) if errors else 0}


def wrk(url, *, duration, threads, connections=32, gzip=False):
    headers = ["-H", "Accept-Encoding: gzip"] if gzip else []
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", *headers, url],
                         check=True, capture_output=True, text=True).stdout
    return parse_wrk(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--threads", type=int, default=4, help="wrk threads")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-gzip", dest="gzip", action="store_false",
                        help="(a) without 'Accept-Encoding: gzip' (every browser sends it; default: sent)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install -y nginx wrk")

    work = Path(tempfile.mkdtemp(prefix="status-bench-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    env = {**os.environ, "VAR_DIR": str(work / "var"), "DEBUG": "false", "SECRET_KEY": "bench-" + "x" * 60,
           "SECURE_SSL_REDIRECT": "false", "SESSION_COOKIE_SECURE": "false", "CSRF_COOKIE_SECURE": "false",
           "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "WARNING",
           "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    for key in ("DATABASE_URL", "REDIS_URL"):
        env.pop(key, None)
    subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([PY, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True, capture_output=True)
    site = work / "var" / "status-site"
    assert (site / "status" / "index.html").exists(), "seed_demo did not publish the status site"

    results = {}
    port = free_port()
    gunicorn = subprocess.Popen(
        [str(BIN / "gunicorn"), "bench_status_wsgi", "--pythonpath", f"{ROOT},{ROOT / 'bench'}",
         "-b", f"127.0.0.1:{port}", "-w", str(args.workers), "--log-level", "warning"],
        cwd=ROOT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        for path in ("/bench/empty.json", "/status/", "/status/api/v2/summary.json"):
            wait_http(base + path)
        wrk(base + "/bench/empty.json", duration=2, threads=args.threads)  # warm up
        for name, path in (("django empty JSON view", "/bench/empty.json"), ("django /status/", "/status/"),
                           ("django summary.json", "/status/api/v2/summary.json")):
            results[name] = wrk(base + path, duration=args.duration, threads=args.threads, gzip=args.gzip)
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=20)

    # nginx: the shipped server block, plus a control location serving unrelated files of the same sizes.
    nginx_dir = work / "nginx"
    control = work / "control"
    for sub in ("logs", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (nginx_dir / sub).mkdir(parents=True, exist_ok=True)
    control.mkdir()
    index = site / "status" / "index.html"
    summary = site / "status" / "api" / "v2" / "summary.json"
    (control / "same-size.html").write_bytes(os.urandom(index.stat().st_size))
    (control / "same-size.json").write_bytes(os.urandom(summary.stat().st_size))
    nport = free_port()
    block = (ROOT / "deploy" / "nginx-status.conf").read_text()
    block = block.replace("listen 80;", f"listen 127.0.0.1:{nport};").replace("listen [::]:80;", "")
    block = block.replace("root /srv/pmrelease/var/status-site;", f"root {site};")
    block = block.replace("    location = / {", f"    location /control/ {{\n        alias {control}/;\n"
                          "        etag on;\n        expires 30s;\n        open_file_cache max=1000 inactive=20s;\n"
                          "        open_file_cache_valid 2s;\n    }\n\n    location = / {", 1)
    (nginx_dir / "status.conf").write_text(block)
    (nginx_dir / "nginx.conf").write_text(f"""
worker_processes {args.workers};
pid {nginx_dir}/nginx.pid;
error_log {nginx_dir}/logs/error.log;
daemon off;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {nginx_dir}/body;
    proxy_temp_path {nginx_dir}/proxy;
    fastcgi_temp_path {nginx_dir}/fastcgi;
    uwsgi_temp_path {nginx_dir}/uwsgi;
    scgi_temp_path {nginx_dir}/scgi;
    include {nginx_dir}/status.conf;
}}
""")
    subprocess.run(["nginx", "-t", "-q", "-c", str(nginx_dir / "nginx.conf"), "-p", str(nginx_dir)], check=True)
    nginx = subprocess.Popen(["nginx", "-c", str(nginx_dir / "nginx.conf"), "-p", str(nginx_dir)])
    try:
        base = f"http://127.0.0.1:{nport}"
        for path in ("/status/", "/status/api/v2/summary.json", "/control/same-size.html"):
            wait_http(base + path)
        wrk(base + "/status/", duration=2, threads=args.threads)
        for name, path in (("nginx same-size file (for /status/)", "/control/same-size.html"),
                           ("nginx /status/", "/status/"),
                           ("nginx same-size file (for summary.json)", "/control/same-size.json"),
                           ("nginx summary.json", "/status/api/v2/summary.json")):
            results[name] = wrk(base + path, duration=args.duration, threads=args.threads)
    finally:
        nginx.terminate()
        nginx.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)

    def ratio(a, b):
        return results[a]["rps"] / results[b]["rps"]

    ratios = {
        "django /status/ vs empty view": ratio("django /status/", "django empty JSON view"),
        "django summary.json vs empty view": ratio("django summary.json", "django empty JSON view"),
        "nginx /status/ vs same-size file": ratio("nginx /status/", "nginx same-size file (for /status/)"),
        "nginx summary.json vs same-size file": ratio("nginx summary.json",
                                                      "nginx same-size file (for summary.json)"),
    }
    sizes = {"index.html": index.stat().st_size if index.exists() else None}
    if args.json:
        print(json.dumps({"results": results, "ratios": ratios, "sizes": sizes}, indent=2))
        return
    print(f"{'target':44} {'req/s':>10} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in results.items():
        print(f"{name:44} {r['rps']:10.0f} {r['p99_ms']:8.2f} {r['non_2xx']:8d}")
    print()
    targets = {"django": 0.80, "nginx": 0.95}
    for name, value in ratios.items():
        target = targets[name.split()[0]]
        print(f"{name:44} {value:7.1%}  (target >= {target:.0%}: {'met' if value >= target else 'NOT met'})")


if __name__ == "__main__":
    main()
