"""Acceptance: the published Statuspage clients parse our JSON from a live server.

PyPI ``statuscheck`` (strict attrs validators on every enumeration) and ``statuspage-prometheus-exporter``
(check_service_status pointed at our summary.json), against a page with components in every status, an
unresolved incident and an upcoming maintenance.
"""
import os

import pytest

from monitoring.statuspage import publishing
from monitoring.statuspage import status as st

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_statuscheck__live_server__summary_parsed_with_strict_enumerations(full_page, live_server):
    from statuscheck.services.bases._statuspageio import BaseStatusPageAPI
    from statuscheck.services.models.generic import COMPONENT_TYPE_MAINTENANCE, TYPE_CRITICAL, TYPE_OUTAGE

    publishing.publish_site()

    class PenguinMailsStatus(BaseStatusPageAPI):
        name = "PenguinMails"

        def _get_base_url(self):
            return f"{live_server.url}/status/api/v2/"

    summary = PenguinMailsStatus().get_summary()
    assert summary.status.code == "critical" and summary.status.name == TYPE_CRITICAL
    assert not summary.status.is_ok
    assert {c.status for c in summary.components} >= {"Operational", "Degraded performance", "Partial outage",
                                                      "Major outage", COMPONENT_TYPE_MAINTENANCE}
    names = {i.name for i in summary.incidents}
    assert {"Mail delays", "Inbound down", "DB upgrade", "Failover test"} <= names
    mail = next(i for i in summary.incidents if i.name == "Mail delays")
    assert {c.name for c in mail.components} == {"SMTP relay", "REST API"}
    assert TYPE_OUTAGE  # the mapping table the client validated against


def test_prometheus_exporter__live_server__status_components_incidents_and_maintenance(full_page, live_server,
                                                                                        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the exporter writes its response cache under ./cache
    os.environ.setdefault("SERVICES_JSON_PATH", str(tmp_path / "none.json"))
    from statuspage_prometheus_exporter.service_checker import check_service_status

    publishing.publish_site()
    url = f"{live_server.url}/status/api/v2/summary.json"
    result = check_service_status("penguinmails", {"name": "PenguinMails", "url": url})
    assert result["success"] is True, result
    assert result["raw_status"] == "critical" and result["status"] == 0
    statuses = {c["name"]: c["status"] for c in result["component_metadata"]}
    assert set(statuses.values()) >= set(st.COMPONENT_STATUSES)
    assert {i["name"] for i in result["incident_metadata"]} == {"Mail delays", "Inbound down"}
    mail = next(i for i in result["incident_metadata"] if i["name"] == "Mail delays")
    assert mail["shortlink"].endswith(f"/status/incidents/{full_page['open'].pk}/")
    assert set(mail["affected_components"]) == {"SMTP relay", "REST API"}
    assert {m["name"] for m in result["maintenance_metadata"]} >= {"Failover test", "DB upgrade"}
