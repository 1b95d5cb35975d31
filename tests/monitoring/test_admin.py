"""Operator admin: create and drive incidents and maintenance, publish drafts, audit history pages."""
import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring.models import Component, Incident, IncidentPolicy, Maintenance
from monitoring.statuspage import incidents
from monitoring.statuspage import status as st
from monitoring.statuspage.maintenance import maintenance_create, maintenance_transition
from pmrelease.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops_client(client, ops):
    client.force_login(ops)
    return client


def test_admin_changelists__operator__every_page_renders(ops_client, full_page):
    for model in ("component", "componentgroup", "incident", "maintenance", "incidentpolicy", "subscriber",
                  "delivery"):
        assert ops_client.get(reverse(f"admin:monitoring_{model}_changelist")).status_code == 200, model
    assert ops_client.get(reverse("admin:monitoring_incident_add")).status_code == 200
    incident = full_page["open"]
    page = ops_client.get(reverse("admin:monitoring_incident_change", args=[incident.pk]))
    assert page.status_code == 200 and b"Resolve" in page.content
    assert ops_client.get(reverse("admin:monitoring_incident_history", args=[incident.pk])).status_code == 200


def test_admin_changelist__developer__no_access(client, users, components):
    client.force_login(users["dev"])
    assert client.get(reverse("admin:monitoring_incident_changelist")).status_code == 403


def test_admin_incident_add__draft__then_publish_and_resolve_through_action_forms(ops_client, components):
    response = ops_client.post(reverse("admin:monitoring_incident_add"), {
        "name": "Admin incident", "impact": "major", "started_at_0": timezone.now().strftime("%Y-%m-%d"),
        "started_at_1": timezone.now().strftime("%H:%M:%S"), "body": "Looking.",
        "affected_components": [components["REST API"].pk], "component_status": st.MAJOR})
    assert response.status_code == 302, response.content[:2000]
    incident = Incident.objects.get(name="Admin incident")
    assert not incident.is_published
    act = reverse("admin:monitoring_incident_act", args=[incident.pk, "publish"])
    assert ops_client.get(act).status_code == 200
    assert ops_client.post(act).status_code == 302
    assert Component.objects.get(pk=components["REST API"].pk).status == st.MAJOR
    act = reverse("admin:monitoring_incident_act", args=[incident.pk, "resolve"])
    ops_client.post(act, {"body": "Fixed."})
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert Component.objects.get(pk=components["REST API"].pk).status == st.OPERATIONAL
    response = ops_client.post(reverse("admin:monitoring_incident_act", args=[incident.pk, "identify"]),
                               {"body": "late"}, follow=True)
    assert b"not allowed" in response.content


def test_admin_maintenance__start_button__in_progress(ops_client, components, ops):
    now = timezone.now()
    m = maintenance_create(data={"name": "M", "body": "b", "scheduled_for": now + dt.timedelta(hours=1),
                                          "scheduled_until": now + dt.timedelta(hours=2),
                                          "components": [components["Database"]]}, by=ops)
    ops_client.post(reverse("admin:monitoring_maintenance_act", args=[m.pk, "start"]), {"body": ""})
    assert Maintenance.objects.get(pk=m.pk).status == "in_progress"


def test_admin_component__status_changed_in_form__history_recorded(ops_client, components):
    api = components["REST API"]
    response = ops_client.post(reverse("admin:monitoring_component_change", args=[api.pk]), {
        "name": "REST API", "description": "", "group": api.group_id, "position": 2, "set_status": st.DEGRADED,
        "status_reason": "slow", "showcase": "on", "start_date": ""})
    assert response.status_code == 302, response.content[:3000]
    assert Component.objects.get(pk=api.pk).status == st.DEGRADED
    assert api.status_changes.filter(new_status=st.DEGRADED).exists()


def _maintenance_post(maintenance, **overrides):
    data = {"name": maintenance.name, "body": maintenance.body,
            "components": [c.pk for c in maintenance.components.all()],
            "scheduled_for_0": maintenance.scheduled_for.strftime("%Y-%m-%d"),
            "scheduled_for_1": maintenance.scheduled_for.strftime("%H:%M:%S"),
            "scheduled_until_0": maintenance.scheduled_until.strftime("%Y-%m-%d"),
            "scheduled_until_1": maintenance.scheduled_until.strftime("%H:%M:%S"),
            "auto_start": "on", "auto_complete": "on", "remind_before": 60,
            "updates-TOTAL_FORMS": 0, "updates-INITIAL_FORMS": 0}
    data.update(overrides)
    return data


def test_maintenance_admin__edit_scheduled__saved_audited_reminder_reset(client, ops, components):
    start = timezone.now() + dt.timedelta(days=2)
    maintenance = maintenance_create(data={
        "name": "DB upgrade", "body": "Upgrading.", "scheduled_for": start,
        "scheduled_until": start + dt.timedelta(hours=1), "components": [components["Database"]]}, by=ops)
    Maintenance.objects.filter(pk=maintenance.pk).update(reminded_at=timezone.now())
    client.force_login(ops)
    later = start + dt.timedelta(days=1)
    response = client.post(f"/admin/monitoring/maintenance/{maintenance.pk}/change/", _maintenance_post(
        maintenance, name="DB upgrade (moved)", scheduled_for_0=later.strftime("%Y-%m-%d"),
        scheduled_until_0=(later + dt.timedelta(hours=1)).strftime("%Y-%m-%d")))
    assert response.status_code == 302, response.content.decode()[:1500]
    maintenance.refresh_from_db()
    assert maintenance.name == "DB upgrade (moved)" and maintenance.reminded_at is None
    assert AuditEvent.objects.filter(action="maintenance.update", object_id=str(maintenance.pk)).exists()


def test_maintenance_admin__end_before_start__form_error_not_403(client, ops, components):
    start = timezone.now() + dt.timedelta(days=2)
    maintenance = maintenance_create(data={
        "name": "DB upgrade", "body": "Upgrading.", "scheduled_for": start,
        "scheduled_until": start + dt.timedelta(hours=1), "components": [components["Database"]]}, by=ops)
    client.force_login(ops)
    earlier = start - dt.timedelta(days=1)
    response = client.post(f"/admin/monitoring/maintenance/{maintenance.pk}/change/", _maintenance_post(
        maintenance, scheduled_until_0=earlier.strftime("%Y-%m-%d")))
    assert response.status_code == 200
    assert "must end after it starts" in response.content.decode()


def test_incident_admin__save_without_changes__no_500(client, ops, components):
    incident = incidents.incident_create(name="Slow", body="Looking.", by=ops,
                                         components={components["Dashboard"]: "degraded_performance"})
    client.force_login(ops)
    response = client.post(f"/admin/monitoring/incident/{incident.pk}/change/",
                           {"updates-TOTAL_FORMS": 0, "updates-INITIAL_FORMS": 0})
    assert response.status_code == 302


def test_incident_admin_add__start_beyond_backdate_limit__error_message_nothing_saved(ops_client, components):
    """A refusal only the service can make (the form accepts any date) is an error message, not a 403 page."""
    response = ops_client.post(reverse("admin:monitoring_incident_add"), {
        "name": "Old news", "impact": "minor", "started_at_0": "2001-01-01", "started_at_1": "10:00:00",
        "body": "Long ago.", "component_status": st.MAJOR}, follow=True)
    assert response.status_code == 200
    assert "started_at: must be between 366 days ago and now" in response.content.decode()
    assert not Incident.objects.exists()


def test_maintenance_admin__save_after_start__nothing_to_save_no_error(ops_client, components, ops):
    now = timezone.now()
    m = maintenance_create(data={"name": "M", "body": "b", "scheduled_for": now + dt.timedelta(hours=1),
                                 "scheduled_until": now + dt.timedelta(hours=2),
                                 "components": [components["Database"]]}, by=ops)
    maintenance_transition(maintenance=m, name="start", by=ops)
    response = ops_client.post(reverse("admin:monitoring_maintenance_change", args=[m.pk]),
                               {"updates-TOTAL_FORMS": 0, "updates-INITIAL_FORMS": 0}, follow=True)
    assert response.status_code == 200 and b"only scheduled maintenance" not in response.content
    m.refresh_from_db()
    assert m.status == "in_progress" and list(m.components.all()) == [components["Database"]]


def test_incident_policy_admin__edit__policy_changed_environment_kept(ops_client, envs, ops):
    row = incidents.incident_policy_set(environment=envs["production"], policy="draft", by=ops)
    response = ops_client.post(reverse("admin:monitoring_incidentpolicy_change", args=[row.pk]),
                               {"environment": envs["staging"].pk, "policy": "publish"})
    assert response.status_code == 302
    assert list(IncidentPolicy.objects.values_list("environment__name", "policy")) == [("production", "publish")]


def test_admin_publish_engine_draft__preview_then_confirmed_statuses(ops_client, components, envs, ops):
    from monitoring.statuspage import incidents
    from monitoring.statuspage import status as st

    api = components["REST API"]
    api.environments.add(envs["production"])
    incident = incidents.incident_for_deployment(
        environment=envs["production"], kind="rolled_back_automatically",
        detail="Automatic rollback of 2.2.1 on production: simulated /healthz: 503 (injected failure)")
    act = reverse("admin:monitoring_incident_act", args=[incident.pk, "publish"])
    page = ops_client.get(act).content.decode()
    assert "Preview: what the public status page will show" in page
    assert incident.name in page and "rolled back automatically" in page
    assert "Internal notes (never published)" in page and "injected failure" in page
    assert '<option value="operational" selected>' in page  # the proposal, preselected for confirmation
    change = ops_client.get(reverse("admin:monitoring_incident_change", args=[incident.pk])).content.decode()
    assert "REST API (Operational)" in change and "injected failure" in change
    ops_client.post(act, {f"component_{api.pk}": st.DEGRADED})
    incident.refresh_from_db()
    api.refresh_from_db()
    assert incident.is_published and api.status == st.DEGRADED
