"""Control characters in public texts: refused on the way in (400 naming the field, API and admin), escaped on
the way out for anything already stored (one bad text never stops the site), and a failed publish surfaced
(/readyz degraded, /metrics, an admin warning)."""
import datetime as dt
import io
import xml.etree.ElementTree as ET

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitoring.statuspage import incidents, publishing
from monitoring.statuspage import status as st
from monitoring.statuspage.models import Component, Incident, IncidentUpdate

pytestmark = pytest.mark.django_db
BELL = "a\u0007b"


@pytest.fixture
def client_ops(api, ops):
    return api(ops)


@pytest.mark.parametrize("field", ["name", "body"])
def test_api_incident_create__control_character__400_naming_the_field(client_ops, components, field):
    data = {"name": "Mail delays", "body": "Delayed.", "publish": True, field: BELL}
    response = client_ops.post("/api/v1/incidents/", data, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Incident.objects.exists()


@pytest.mark.parametrize("path,field", [("updates", "body"), ("identify", "body"), ("resolve", "body")])
def test_api_incident_update_and_transition__control_character__400(client_ops, components, ops, path, field):
    incident = incidents.incident_create(name="Mail delays", body="Delayed.", by=ops)
    response = client_ops.post(f"/api/v1/incidents/{incident.pk}/{path}/", {field: "x\u001by"}, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert incident.updates.count() == 1


def test_api_incident_postmortem__lone_surrogate__400(client_ops, components, ops):
    incident = incidents.incident_create(name="Mail delays", body="Delayed.", by=ops)
    incidents.incident_transition(incident=incident, name="resolve", by=ops, body="Fixed.")
    response = client_ops.post(f"/api/v1/incidents/{incident.pk}/postmortem/", '{"body": "cause: \\ud800"}',
                               content_type="application/json")
    assert response.status_code == 400 and "body" in response.json()


@pytest.mark.parametrize("path,data,field", [
    ("components", {"name": "Web\u0000"}, "name"),
    ("components", {"name": "Web", "description": "d\u0008"}, "description"),
    ("component-groups", {"name": "G\u000cH"}, "name"),
    ("component-groups", {"name": "G", "description": "a\u0085b"}, "description"),
])
def test_api_component_and_group__control_character__400(client_ops, path, data, field):
    import json

    response = client_ops.post(f"/api/v1/{path}/", json.dumps(data), content_type="application/json")
    assert response.status_code == 400 and (field in response.json() or "NUL" in str(response.json()))


@pytest.mark.parametrize("field", ["name", "body"])
def test_api_maintenance_create__control_character__400(client_ops, components, field):
    now = timezone.now()
    data = {"name": "DB upgrade", "body": "Upgrading.", "scheduled_for": (now + dt.timedelta(days=1)).isoformat(),
            "scheduled_until": (now + dt.timedelta(days=1, hours=1)).isoformat(), field: BELL}
    response = client_ops.post("/api/v1/maintenances/", data, format="json")
    assert response.status_code == 400 and field in response.json(), response.content


def test_api_maintenance_transition__control_character__400(client_ops, components, ops):
    from monitoring.statuspage.maintenance import maintenance_create

    now = timezone.now()
    row = maintenance_create(data={"name": "DB", "body": "Up.", "scheduled_for": now + dt.timedelta(days=1),
                                   "scheduled_until": now + dt.timedelta(days=1, hours=1)}, by=ops)
    response = client_ops.post(f"/api/v1/maintenances/{row.pk}/start/", {"body": BELL}, format="json")
    assert response.status_code == 400 and "body" in response.json()


def test_tab_newline_and_unicode__accepted(client_ops, components):
    response = client_ops.post("/api/v1/incidents/", {"name": "Mail délais ✉", "body": "Line 1\n\tLine 2\r\n"},
                               format="json")
    assert response.status_code == 201, response.content


def test_admin_incident_create__control_character__refused_naming_the_field(client, ops, components):
    client.force_login(ops)
    response = client.post("/admin/monitoring/incident/add/", {
        "name": BELL, "impact": "minor", "started_at_0": "2026-01-01", "started_at_1": "10:00:00",
        "body": "Delayed.", "component_status": st.PARTIAL, "publish": "on"})
    assert response.status_code == 200 and "control characters" in response.content.decode()
    response = client.post("/admin/monitoring/incident/add/", {
        "name": "Mail", "impact": "minor", "started_at_0": "2026-01-01", "started_at_1": "10:00:00", "body": BELL,
        "component_status": st.PARTIAL, "publish": "on"},
        follow=True)
    assert "body: must not contain control characters" in response.content.decode()
    assert not Incident.objects.exists()


def test_admin_component__control_character_in_description__field_error(client, ops):
    client.force_login(ops)
    response = client.post("/admin/monitoring/component/add/", {
        "name": "Web", "description": BELL, "position": 0, "set_status": st.OPERATIONAL, "showcase": "on"})
    assert response.status_code == 200 and "control characters" in response.content.decode()
    assert not Component.objects.exists()


# --- what is already stored ---------------------------------------------------------------------------------------
def _store_bad_text(ops, components):
    """An incident whose update body holds a BEL (written before the refusal existed)."""
    bad = incidents.incident_create(name="Old incident", body="fine", by=ops,
                                    components={components["REST API"]: st.DEGRADED})
    IncidentUpdate.objects.filter(incident=bad).update(body=BELL)
    Incident.objects.filter(pk=bad.pk).update(name="Old \u0007 incident")
    return bad


def test_publish__stored_control_character__escaped_and_later_incidents_still_published(ops, components, client):
    _store_bad_text(ops, components)
    incidents.incident_create(name="Major outage", body="Everything is down.", by=ops, impact="critical",
                              components={components["Database"]: st.MAJOR})
    publishing.publish_site()
    feed = client.get("/status/feed.atom").content
    ET.fromstring(feed)  # valid XML
    assert "Major outage" in feed.decode() and "a\ufffdb" in feed.decode()
    summary = client.get("/status/api/v2/summary.json").json()
    assert {i["name"] for i in summary["incidents"]} == {"Major outage", "Old \ufffd incident"}
    status = publishing.last_status()
    assert status["ok"] and status["escaped_count"] == 2


def test_seed_demo__stored_control_character__does_not_die(ops, components, users):
    _store_bad_text(ops, components)
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo ready." in out.getvalue()


# --- a failed publish is surfaced -----------------------------------------------------------------------------------
@pytest.fixture
def failed_publish(monkeypatch, components):
    def broken(snapshot, **kwargs):
        raise ValueError("All strings must be XML compatible")

    monkeypatch.setattr(publishing, "render_site", broken)
    with pytest.raises(ValueError):
        publishing.publish_site()
    monkeypatch.undo()


def test_readyz__publish_failed__200_degraded_with_the_reason(client, failed_publish):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["checks"]["status_page"] == "degraded"
    assert "status page publish failed" in body["reasons"][0] and "XML compatible" in body["reasons"][0]
    publishing.publish_site()
    assert client.get("/readyz").json()["status"] == "ready"


def test_metrics__publish_failed__gauges_say_so(client, settings, failed_publish):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    text = client.get("/metrics").content.decode()
    assert "pmrelease_status_publish_ok 0.0" in text
    assert "pmrelease_status_publish_consecutive_failures 1.0" in text
    publishing.publish_site()
    assert "pmrelease_status_publish_ok 1.0" in client.get("/metrics").content.decode()


def test_admin__publish_failed__operators_warned(client, ops, failed_publish):
    client.force_login(ops)
    html = client.get("/admin/monitoring/incident/").content.decode()
    assert "The public status page is out of date" in html and "XML compatible" in html
