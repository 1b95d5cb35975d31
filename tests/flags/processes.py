"""Other processes for the flags tests: gunicorn (the portal, the edge), management commands, a TCP proxy that can
take the database away from a process. They use the test database (committed data: ``transaction=True`` tests)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url(host=None, port=None, path=None):
    """The test database as a URL another process can open (through ``host:port`` or ``path`` when given)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{path or db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return (f"postgres://{db['USER']}{password}@{host or db['HOST'] or '127.0.0.1'}:{port or db['PORT'] or 5432}/"
            f"{db['NAME']}")


def redis_address():
    if not settings.REDIS_URL:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(settings.REDIS_URL)
    return parts.hostname or "127.0.0.1", parts.port or 6379, parts.path


def process_env(**extra):
    env = dict(os.environ, DATABASE_URL=database_url(), VAR_DIR=str(settings.VAR_DIR), DEBUG="false",
               SECURE_SSL_REDIRECT="false", SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false",
               FLAGS_USAGE_FLUSH_SECONDS="0", DJANGO_SETTINGS_MODULE="pmrelease.settings", PYTHONPATH=str(REPO))
    env.setdefault("SECRET_KEY", "test-only-0123456789abcdefghijklmnopqrstuvwxyz")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(args, env=None, timeout=60):
    """A management command (or ``-c`` script) in its own process."""
    command = [sys.executable, *args] if args[0] in ("-c", "manage.py") else args
    return subprocess.run(command, cwd=REPO, env=env or process_env(), check=True, timeout=timeout,
                          capture_output=True, text=True)


class Gunicorn:
    """``gunicorn APP`` with ``workers`` sync workers on a free port; stderr kept in a file."""

    def __init__(self, app, env, *, workers=1, log_dir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log_dir) / f"gunicorn-{self.port}.log"
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
        self.process = subprocess.Popen(
            [gunicorn, app, "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), "--timeout", "60",
             "--log-level", "warning"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"), start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.process.poll() is None, self.logs()
                time.sleep(0.1)
        raise AssertionError(f"gunicorn {app} did not start: {self.logs()}")

    def logs(self):
        return self.log.read_text() if self.log.exists() else ""

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=15)


def request(url, *, method="GET", body=None, headers=None, timeout=15):
    """(status, parsed JSON or None, headers)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                         **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None, dict(error.headers)


def within(seconds, check, *, every=0.05):
    """Seconds until ``check()`` was true (AssertionError after ``seconds``)."""
    start = time.monotonic()
    while not check():
        elapsed = time.monotonic() - start
        assert elapsed < seconds, f"not within {seconds} s"
        time.sleep(every)
    return time.monotonic() - start


class TcpProxy:
    """Forwards 127.0.0.1:port to ``target``; ``stop()`` makes the target unreachable through it."""

    def __init__(self, target):
        self.target = target
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.sockets = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self):
        self.running = False
        self.server.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
