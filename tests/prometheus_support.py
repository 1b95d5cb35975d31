"""A real Prometheus (Debian's ``prometheus``) scraping an exporter the test controls, for the metric tests.

The exporter serves ``http_requests_total{app, version, status}`` counters that grow like an application's
under steady traffic, with an error ratio per version the test sets. Prometheus scrapes it every second.
"""
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(not PROMETHEUS and not os.environ.get("CI"),
                                      reason="no prometheus binary (Debian package 'prometheus'; required in CI)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Exporter:
    """Counters of an application serving ``rps`` requests a second per version, ``ratio`` of them 5xx."""

    def __init__(self, app="penguinmails", rps=100.0):
        self.app, self.rps = app, rps
        self.ratios = {}  # version -> error ratio
        self.counts = {}  # (version, status) -> float
        self.lock = threading.Lock()
        self.last = time.monotonic()
        self.port = free_port()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _advance(self):
        now = time.monotonic()
        elapsed, self.last = now - self.last, now
        for (version, flag), ratio in self.ratios.items():
            for status, share in (("500", ratio), ("200", 1 - ratio)):
                key = (version, flag, status)
                self.counts[key] = self.counts.get(key, 0.0) + self.rps * elapsed * share

    def set_ratio(self, version, ratio, *, flag=""):
        """``flag``: the requests served with that feature flag on (a ``flag`` label, as an application whose
        middleware labels its metrics with the flags in play would)."""
        with self.lock:
            self._advance()
            self.ratios[(version, flag)] = ratio

    def render(self):
        with self.lock:
            self._advance()
            lines = ["# TYPE http_requests_total counter"]
            for (version, flag, status), value in sorted(self.counts.items()):
                flag_label = f',flag="{flag}"' if flag else ""
                lines.append(f'http_requests_total{{app="{self.app}",version="{version}"{flag_label},status="{status}"}} '
                             f'{value:.3f}')
        return "\n".join(lines) + "\n"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def prometheus_scraping(exporter, *, scrape_interval="1s"):
    """A Prometheus on a free port scraping ``exporter``; yields its base URL."""
    if not PROMETHEUS:
        pytest.fail("the prometheus binary is missing (install Debian's 'prometheus')")
    workdir = Path(tempfile.mkdtemp(prefix="pmr-prometheus-"))
    port = free_port()
    (workdir / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
        f"scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{exporter.port}']\n")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("Prometheus did not become ready within 30 s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def wait_for_series(url, query, *, timeout=20):
    """Wait until Prometheus has data for ``query`` (a few scrapes after the exporter started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=2).json()
        if body.get("data", {}).get("result"):
            return True
        time.sleep(0.5)
    return False
