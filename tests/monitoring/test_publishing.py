"""Statuspage v2 JSON, the Atom feed and the static site: published atomically, served without a database."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from django.test import Client

from monitoring import tasks
from monitoring.statuspage import incidents, publishing
from monitoring.statuspage import status as st

PAGE_FIELDS = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT_FIELDS = {"id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
                    "start_date", "group_id", "page_id", "group", "only_show_if_degraded"}
INCIDENT_FIELDS = {"id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
                   "shortlink", "started_at", "page_id", "incident_updates", "components"}
UPDATE_FIELDS = {"id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
                 "affected_components"}
DOCUMENTS = ["summary.json", "status.json", "components.json", "incidents.json", "incidents/unresolved.json",
             "scheduled-maintenances.json", "scheduled-maintenances/upcoming.json",
             "scheduled-maintenances/active.json"]


def _get_json(client, name):
    response = client.get(f"/status/api/v2/{name}")
    assert response.status_code == 200, name
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


@pytest.mark.django_db
def test_statuspage_documents__full_page__exact_fields_and_enumerations(full_page, client):
    publishing.publish_site()
    docs = {name: _get_json(client, name) for name in DOCUMENTS}
    for doc in docs.values():
        assert set(doc["page"]) == PAGE_FIELDS
    summary = docs["summary.json"]
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert summary["status"] == {"indicator": "critical", "description": "Major System Outage"}
    assert docs["status.json"]["status"] == summary["status"]
    statuses = {c["status"] for c in summary["components"] if not c["group"]}
    assert statuses == set(st.COMPONENT_STATUSES)
    for component in summary["components"]:
        expected = COMPONENT_FIELDS | ({"components"} if component["group"] else set())
        assert set(component) == expected
        assert "description" in component
    groups = [c for c in summary["components"] if c["group"]]
    assert {g["name"] for g in groups} == {"Web app", "Mail"}
    members = {c["id"] for c in summary["components"] if c["group_id"] == groups[0]["id"]}
    assert set(groups[0]["components"]) == members
    assert {i["name"] for i in summary["incidents"]} == {"Mail delays", "Inbound down"}
    for incident in docs["incidents.json"]["incidents"]:
        assert set(incident) == INCIDENT_FIELDS
        assert incident["status"] in {"investigating", "identified", "monitoring", "resolved", "postmortem"}
        assert incident["impact"] in {"none", "minor", "major", "critical"}
        for update in incident["incident_updates"]:
            assert set(update) == UPDATE_FIELDS
            assert update["incident_id"] == incident["id"]
            for change in update["affected_components"] or []:
                assert set(change) == {"code", "name", "old_status", "new_status"}
    assert len(docs["incidents.json"]["incidents"]) == 3
    assert {i["name"] for i in docs["incidents/unresolved.json"]["incidents"]} == {"Mail delays", "Inbound down"}
    for m in docs["scheduled-maintenances.json"]["scheduled_maintenances"]:
        assert set(m) == INCIDENT_FIELDS | {"scheduled_for", "scheduled_until"}
        assert m["impact"] == "maintenance"
        assert m["status"] in {"scheduled", "in_progress", "verifying", "completed"}
    assert [m["name"] for m in docs["scheduled-maintenances/upcoming.json"]["scheduled_maintenances"]] == [
        "Failover test"]
    assert [m["name"] for m in docs["scheduled-maintenances/active.json"]["scheduled_maintenances"]] == ["DB upgrade"]
    assert {m["name"] for m in summary["scheduled_maintenances"]} == {"Failover test", "DB upgrade"}
    assert summary["incidents"][0]["shortlink"].startswith("http://testserver/status/incidents/")
    assert summary["page"]["updated_at"].endswith("Z")


@pytest.mark.django_db
def test_publish__draft_incident__never_public(components, ops, client):
    incidents.incident_create(name="Secret draft", body="not yet", by=ops, publish=False,
                              components={components["REST API"]: st.MAJOR})
    publishing.publish_site()
    body = b"".join(p.read_bytes() for p in publishing.site_root().rglob("*") if p.is_file())
    assert b"Secret draft" not in body
    assert _get_json(client, "status.json")["status"]["indicator"] == "none"


@pytest.mark.django_db
def test_status_page_html__full_page__banner_bars_incidents_maintenance_history(full_page, client):
    publishing.publish_site()
    html = client.get("/status/").content.decode()
    assert 'data-indicator="critical"' in html and "Major System Outage" in html
    assert html.count('class="bar"') == 5
    assert html.count('class="day s-') == 5 * 90
    assert "Mail delays" in html and "Failover test" in html and "DB upgrade" in html
    assert "https://" not in html.replace("https://www.w3.org", "")  # no external assets
    incident = full_page["open"]
    page = client.get(f"/status/incidents/{incident.pk}/")
    assert page.status_code == 200 and b"Mail is delayed." in page.content
    assert client.get("/status/history/").status_code == 200
    assert client.get("/status/assets/status.css")["Content-Type"].startswith("text/css")


@pytest.mark.django_db
def test_incident_transition__on_commit__site_republished_by_task(components, ops, client,
                                                                  django_capture_on_commit_callbacks, monkeypatch):
    published = []
    monkeypatch.setattr(tasks.publish_status_site, "delay", lambda *a, **k: published.append(tasks.publish_status_site()))
    with django_capture_on_commit_callbacks(execute=True):
        incidents.incident_create(name="Live one", body="Now.", by=ops, components={components["REST API"]: st.MAJOR})
    assert published
    assert b"Live one" in client.get("/status/").content


@pytest.mark.django_db
def test_feed__incidents__valid_atom_with_one_entry_each(full_page, client):
    publishing.publish_site()
    response = client.get("/status/feed.atom")
    assert response["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(response.content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    for tag in ("id", "title", "updated"):
        assert root.find(f"a:{tag}", ns) is not None
    entries = root.findall("a:entry", ns)
    assert len(entries) == 3 + 2
    for entry in entries:
        assert entry.find("a:id", ns).text.startswith("http://testserver/status/")
        assert entry.find("a:updated", ns).text and entry.find("a:title", ns).text
        assert entry.find("a:link", ns).get("href") == entry.find("a:id", ns).text
    assert "Mail delays (Investigating)" in [e.find("a:title", ns).text for e in entries]


def test_write_atomic__concurrent_reader__never_sees_a_partial_file(tmp_path):
    target = tmp_path / "status" / "api" / "v2" / "summary.json"
    versions = [json.dumps({"version": n, "pad": "x" * (200_000 + n * 1000)}).encode() for n in range(40)]
    publishing.write_atomic(target, versions[0])
    seen, bad, stop = set(), [], threading.Event()

    def read():
        while not stop.is_set():
            data = target.read_bytes()
            try:
                seen.add(json.loads(data)["version"])
            except ValueError:
                bad.append(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    for data in versions[1:]:
        publishing.write_atomic(target, data)
    stop.set()
    reader.join()
    assert not bad, f"reader saw {len(bad)} partial files"
    assert json.loads(target.read_bytes())["version"] == 39
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_write_atomic__same_bytes__file_left_alone(tmp_path):
    target = tmp_path / "a.json"
    assert publishing.write_atomic(target, b"{}") is True
    mtime = target.stat().st_mtime_ns
    assert publishing.write_atomic(target, b"{}") is False
    assert target.stat().st_mtime_ns == mtime


@pytest.mark.django_db
def test_published_view__database_connection_broken__page_still_served(full_page, monkeypatch):
    publishing.publish_site()
    from django.db import connections

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
@pytest.mark.django_db
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


