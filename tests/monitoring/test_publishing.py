"""Publishing the static site: the page, history and incident pages, the Atom feed, the task that re-publishes
on commit; files written atomically; drafts never public."""
import json
import threading
import xml.etree.ElementTree as ET

import pytest

from monitoring import tasks
from monitoring.statuspage import incidents, publishing
from monitoring.statuspage import status as st


@pytest.mark.django_db
def test_publish__draft_incident__never_public(components, ops, client):
    incidents.incident_create(name="Secret draft", body="not yet", by=ops, publish=False,
                              components={components["REST API"]: st.MAJOR})
    publishing.publish_site()
    body = b"".join(p.read_bytes() for p in publishing.site_root().rglob("*") if p.is_file())
    assert b"Secret draft" not in body
    assert json.loads(client.get("/status/api/v2/status.json").content)["status"]["indicator"] == "none"


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










