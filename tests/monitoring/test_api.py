"""Operator API under /api/v1/: incidents, maintenances, components, policies; 403/409/400 answers."""
import datetime as dt

import pytest
from django.utils import timezone

from monitoring.models import Component, Incident
from monitoring.statuspage import status as st
from pmrelease.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_incident_api__create_and_walk_lifecycle__updates_and_component_statuses(api, ops, components):
    client = api(ops)
    api_id = components["REST API"].pk
    response = client.post("/api/v1/incidents/", {"name": "API errors", "body": "Investigating.", "impact": "major",
                                                  "components": {str(api_id): st.PARTIAL}}, format="json")
    assert response.status_code == 201, response.data
    pk = response.data["id"]
    assert response.data["published"] is True and response.data["affected"] == {str(api_id): st.PARTIAL}
    assert Component.objects.get(pk=api_id).status == st.PARTIAL
    response = client.post(f"/api/v1/incidents/{pk}/identify/", {"body": "Found it.",
                                                                  "components": {str(api_id): st.MAJOR}},
                           format="json")
    assert response.status_code == 200 and response.data["status"] == "identified"
    assert client.post(f"/api/v1/incidents/{pk}/updates/", {"body": "Still on it."}, format="json").status_code == 201
    response = client.post(f"/api/v1/incidents/{pk}/resolve/", {"body": "Fixed."}, format="json")
    assert response.data["status"] == "resolved" and Component.objects.get(pk=api_id).status == st.OPERATIONAL
    assert client.post(f"/api/v1/incidents/{pk}/resolve/", {"body": "Again."}, format="json").status_code == 409
    response = client.post(f"/api/v1/incidents/{pk}/postmortem/", {"body": "Why it happened."}, format="json")
    assert response.data["status"] == "postmortem"
    assert len(response.data["updates"]) == 5
    history = client.get(f"/api/v1/incidents/{pk}/history/").data
    assert {"incident.create", "incident.identify", "incident.resolve"} <= {e["action"] for e in history}


def test_incident_api__developer__403_and_anonymous_401(api, users, components):
    assert api(users["dev"]).get("/api/v1/incidents/").status_code == 403
    assert api(users["dev"]).post("/api/v1/incidents/", {"name": "x", "body": "y"}, format="json").status_code == 403
    anonymous = api().get("/api/v1/incidents/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"


def test_incident_api__bad_input__400_with_field_errors(api, ops, components):
    response = api(ops).post("/api/v1/incidents/", {"name": "x", "body": "y", "impact": "huge",
                                                    "components": {"999": st.MAJOR}}, format="json")
    assert response.status_code == 400 and "impact" in response.data
    response = api(ops).post("/api/v1/incidents/", {"name": "x", "body": "y",
                                                    "components": {"99999": st.MAJOR}}, format="json")
    assert response.status_code == 400 and "components" in response.data


def test_incident_api__draft_publish_and_delete_rules(api, ops, components):
    client = api(ops)
    pk = client.post("/api/v1/incidents/", {"name": "Draft", "body": "b", "publish": False}, format="json").data["id"]
    assert client.get(f"/api/v1/incidents/{pk}/").data["available_transitions"][0] == "publish"
    assert client.post(f"/api/v1/incidents/{pk}/publish/").status_code == 200
    assert client.post(f"/api/v1/incidents/{pk}/publish/").status_code == 409
    assert client.delete(f"/api/v1/incidents/{pk}/").status_code == 409
    other = client.post("/api/v1/incidents/", {"name": "D2", "body": "b", "publish": False}, format="json").data["id"]
    assert client.delete(f"/api/v1/incidents/{other}/").status_code == 204
    assert not Incident.objects.filter(pk=other).exists()


def test_maintenance_api__create_start_verify_complete(api, ops, components):
    client = api(ops)
    now = timezone.now()
    response = client.post("/api/v1/maintenances/", {
        "name": "DB upgrade", "body": "Upgrade.", "components": [components["Database"].pk],
        "scheduled_for": (now + dt.timedelta(hours=1)).isoformat(),
        "scheduled_until": (now + dt.timedelta(hours=2)).isoformat()}, format="json")
    assert response.status_code == 201, response.data
    pk = response.data["id"]
    assert client.post(f"/api/v1/maintenances/{pk}/verify/").status_code == 409
    assert client.post(f"/api/v1/maintenances/{pk}/start/").data["status"] == "in_progress"
    assert Component.objects.get(pk=components["Database"].pk).status == st.MAINTENANCE
    assert client.post(f"/api/v1/maintenances/{pk}/verify/").data["status"] == "verifying"
    assert client.post(f"/api/v1/maintenances/{pk}/complete/", {"body": "Done."}, format="json").data["status"] == \
        "completed"
    assert Component.objects.get(pk=components["Database"].pk).status == st.OPERATIONAL


def test_component_api__create_set_status_history(api, ops, envs):
    client = api(ops)
    response = client.post("/api/v1/components/", {"name": "Billing", "environments": ["production"]},
                           format="json")
    assert response.status_code == 201 and response.data["status"] == st.OPERATIONAL
    pk = response.data["id"]
    response = client.post(f"/api/v1/components/{pk}/set-status/", {"status": st.DEGRADED, "reason": "slow"},
                           format="json")
    assert response.data["status"] == st.DEGRADED
    assert client.post(f"/api/v1/components/{pk}/set-status/", {"status": "bad"}, format="json").status_code == 400
    history = client.get(f"/api/v1/components/{pk}/status-history/").data["results"]
    assert [h["new_status"] for h in history] == [st.DEGRADED, st.OPERATIONAL]
    assert client.patch(f"/api/v1/components/{pk}/", {"status": st.MAJOR}, format="json").status_code == 400
    assert client.patch(f"/api/v1/components/{pk}/", {"description": "Invoices"}, format="json").status_code == 200
    assert AuditEvent.objects.filter(action="component.update", object_id=str(pk)).exists()


def test_incident_policy_api__upsert(api, ops, envs):
    client = api(ops)
    assert client.post("/api/v1/incident-policies/", {"environment": "production", "policy": "publish"},
                       format="json").status_code == 200
    assert client.post("/api/v1/incident-policies/", {"environment": "production", "policy": "none"},
                       format="json").data["policy"] == "none"
    assert client.post("/api/v1/incident-policies/", {"environment": "production", "policy": "x"},
                       format="json").status_code == 400


@pytest.mark.parametrize("payload", [
    {"name": "x", "body": "y", "components": {"abc": "major_outage"}},
    {"name": "x", "body": "y", "components": {"1.5": "major_outage"}},
    {"name": "x", "body": "y", "started_at": "0001-01-01T00:00:00Z"},
    {"name": "x", "body": "y", "started_at": "2999-01-01T00:00:00Z"},
])
def test_incident_api__odd_ids_and_dates__400_not_500(api, ops, components, payload):
    response = api(ops).post("/api/v1/incidents/", payload, format="json")
    assert response.status_code == 400, response.content
    assert not Incident.objects.exists()




def test_component_group_api__create_update_delete__audited(api, ops):
    client = api(ops)
    response = client.post("/api/v1/component-groups/", {"name": "Billing", "position": 4}, format="json")
    assert response.status_code == 201, response.data
    pk = response.data["id"]
    assert client.patch(f"/api/v1/component-groups/{pk}/", {"description": "Invoices"},
                        format="json").data["description"] == "Invoices"
    assert client.delete(f"/api/v1/component-groups/{pk}/").status_code == 204
    assert list(AuditEvent.objects.filter(object_type="monitoring.componentgroup", object_id=str(pk))
                .order_by("id").values_list("action", flat=True)) == [
        "componentgroup.create", "componentgroup.update", "componentgroup.delete"]
