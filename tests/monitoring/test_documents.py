"""The Statuspage v2 JSON documents as published: the real format's envelopes, field sets and enumerations."""
import json

import pytest

from monitoring.statuspage import publishing
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
