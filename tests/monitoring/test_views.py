"""The public views: the published site served from files (also with the database and broker gone), path rules,
and what happens when nothing is published yet."""
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django import db
from django.db import connections
from django.test import Client

from monitoring.statuspage import publishing

pytestmark = pytest.mark.django_db


def test_published_view__nothing_published_and_database_down__503_retry_after_and_logged(
        client, monkeypatch, caplog):
    def database_down(*args, **kwargs):
        raise db.OperationalError("connection to server at 127.0.0.1 port 5432 failed")

    monkeypatch.setattr(publishing.selectors, "snapshot", database_down)
    with caplog.at_level(logging.WARNING, logger="monitoring.statuspage.views"):
        response = client.get("/status/")
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "port 5432 failed" in caplog.text


def test_published_view__nothing_published_and_publish_dir_unwritable__503_and_logged(
        client, settings, tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.STATUS_PUBLISH_DIR = blocker / "status-site"
    with caplog.at_level(logging.WARNING, logger="monitoring.statuspage.views"):
        response = client.get("/status/api/v2/summary.json")
    assert response.status_code == 503
    assert "NotADirectoryError" in caplog.text


def test_published_view__nothing_published_and_publishing_has_a_bug__error_not_hidden(client, monkeypatch):
    def bug(*args, **kwargs):
        raise TypeError("render_site() got an unexpected keyword argument")

    monkeypatch.setattr(publishing, "render_site", bug)
    with pytest.raises(TypeError, match="unexpected keyword"):
        client.get("/status/")


def test_published_view__nothing_published__publishes_once_and_serves(client, components):
    response = client.get("/status/api/v2/status.json")
    assert response.status_code == 200 and b'"indicator":"none"' in response.content
    assert (publishing.site_root() / "index.html").exists()


def test_published_view__database_connection_broken__page_still_served(full_page, monkeypatch):
    publishing.publish_site()
    def broken(*args, **kwargs):
        raise RuntimeError("database is down")

    for conn in connections.all():
        monkeypatch.setattr(conn, "ensure_connection", broken)
        monkeypatch.setattr(conn, "cursor", broken)
    client = Client()
    for path in ("/status/", "/status/api/v2/summary.json", "/status/feed.atom",
                 f"/status/incidents/{full_page['open'].pk}/"):
        assert client.get(path).status_code == 200, path
    response = client.get("/status/api/v2/summary.json")
    assert client.get("/status/api/v2/summary.json", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


def test_published_view__path_traversal_and_hidden_files__404(client, publish_dir):
    root = Path(publish_dir) / "status"
    root.mkdir(parents=True)
    (root / "index.html").write_text("ok")
    (Path(publish_dir) / "secret.txt").write_text("no")
    (root / ".index.html.123.tmp").write_text("half")
    assert client.get("/status/../secret.txt").status_code == 404
    assert client.get("/status/%2e%2e/secret.txt").status_code == 404
    assert client.get("/status/.index.html.123.tmp").status_code == 404
    assert client.get("/status/").content == b"ok"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_published_site__separate_process_with_database_and_broker_gone__answers(full_page, tmp_path, settings):
    """A fresh web process whose DATABASE_URL and REDIS_URL point at nothing still serves the status page."""
    var = tmp_path / "var"
    settings.STATUS_PUBLISH_DIR = var / "status-site"
    publishing.publish_site()
    port = _free_port()
    env = {**os.environ, "VAR_DIR": str(var), "DATABASE_URL": "postgres://nobody@127.0.0.1:1/gone",
           "REDIS_URL": "redis://127.0.0.1:1/0", "SECRET_KEY": "s" * 60, "DEBUG": "false",
           "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false"}
    env.pop("STATUS_PUBLISH_DIR", None)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen([str(gunicorn), "pmrelease.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--log-level", "warning"],
                            cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/status/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.terminate()
                    raise AssertionError(proc.communicate(timeout=10)[1].decode()[-2000:]) from None
                time.sleep(0.2)
        assert response.status_code == 200 and b"Major System Outage" in response.content
        summary = httpx.get(f"http://127.0.0.1:{port}/status/api/v2/summary.json", timeout=5).json()
        assert summary["status"]["indicator"] == "critical"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 503  # the portal is down
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("path", ["/status/x%00.html", "/status/" + "a" * 300, "/status/" + "a" * 300 + "/"])
def test_published_view__nul_or_overlong_path__404(client, path):
    assert client.get(path).status_code == 404
