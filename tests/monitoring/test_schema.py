"""The status page's Statuspage v2 JSON in the served OpenAPI document (monitoring.statuspage.schema), and the
published files validated against the schemas it documents."""
import pytest

from monitoring.statuspage import publishing
from tests.openapi_support import assert_documented, assert_invalid, served_schema

pytestmark = pytest.mark.django_db

DOCUMENTS = ["summary.json", "status.json", "components.json", "incidents.json", "incidents/unresolved.json",
             "scheduled-maintenances.json", "scheduled-maintenances/upcoming.json",
             "scheduled-maintenances/active.json"]


@pytest.fixture
def document(client, users):
    return served_schema(client, users["dev"])


def test_openapi_schema__served__valid_openapi_3_with_the_status_json(document):
    for name in DOCUMENTS:
        operation = document["paths"][f"/status/api/v2/{name}"]["get"]
        assert operation["security"] == [] and operation["tags"] == ["Status page"]
        assert {"200", "304"} <= set(operation["responses"])
    schemas = document["components"]["schemas"]
    for name in ("StatuspagePage", "StatuspageStatus", "StatuspageComponent", "StatuspageIncident",
                 "StatuspageIncidentUpdate", "StatuspageMaintenance", "StatuspageSummary"):
        assert name in schemas, name
    assert schemas["StatuspageStatus"]["properties"]["indicator"]["enum"] == [
        "none", "maintenance", "minor", "major", "critical"]
    # the operator API's own components are untouched
    assert "Component" in schemas and "Incident" in schemas


def test_statuspage_schemas__a_field_missing_extra_or_outside_the_enumerations__refused(document):
    page = {"id": "p", "name": "P", "url": "http://testserver/status", "time_zone": "UTC",
            "updated_at": "2026-12-01T10:00:00.000Z"}
    assert_invalid(document, "StatuspageStatusDocument", {"page": page})
    assert_invalid(document, "StatuspageStatusDocument", {"page": page, "status": {
        "indicator": "none", "description": "All Systems Operational", "extra": 1}})
    assert_invalid(document, "StatuspageStatusDocument", {"page": page, "status": {
        "indicator": "fine", "description": "All Systems Operational"}})
    assert_invalid(document, "StatuspageStatusDocument", {"page": {**page, "updated_at": "yesterday"},
                                                          "status": {"indicator": "none", "description": ""}})


def test_status_json__published_files__match_the_documented_schemas(document, full_page, client):
    publishing.publish_site()
    bodies = {}
    for name in DOCUMENTS:
        path = f"/status/api/v2/{name}"
        response = client.get(path)
        assert response.status_code == 200, name
        bodies[name] = assert_documented(document, path, "get", response)
        again = client.get(path, HTTP_IF_NONE_MATCH=response["ETag"])
        assert again.status_code == 304
        assert_documented(document, path, "get", again)
    # what was validated holds every shape: groups and components, updates with and without changed
    # components, incidents resolved and not, maintenances active and upcoming
    summary = bodies["summary.json"]
    assert {c["group"] for c in summary["components"]} == {True, False}
    incidents = bodies["incidents.json"]["incidents"]
    assert {i["resolved_at"] is None for i in incidents} == {True, False}
    updates = [u for i in incidents for u in i["incident_updates"]]
    assert any(u["affected_components"] for u in updates)
    assert {m["status"] for m in bodies["scheduled-maintenances.json"]["scheduled_maintenances"]} >= {
        "in_progress", "scheduled"}


def test_status_json__nothing_published_yet__documented_answer(document, client, settings, tmp_path):
    settings.STATUS_PUBLISH_DIR = tmp_path / "unwritable" / "site"
    (tmp_path / "unwritable").write_text("a file, not a directory: publishing fails")
    response = client.get("/status/api/v2/status.json")
    assert response.status_code == 503
    assert_documented(document, "/status/api/v2/status.json", "get", response)
