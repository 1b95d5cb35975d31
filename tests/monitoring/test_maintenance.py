"""Scheduled maintenance through its services, and the beat tick that starts, completes and reminds."""
import datetime as dt

import pytest
from django.utils import timezone

from monitoring.models import Component, Maintenance
from monitoring.statuspage import incidents
from monitoring.statuspage import status as st
from monitoring.statuspage.maintenance import (
    maintenance_create,
    maintenance_tick,
    maintenance_transition,
    maintenance_update,
)
from pmrelease import errors
from pmrelease.models import AuditEvent

pytestmark = pytest.mark.django_db


def _status(component):
    return Component.objects.get(pk=component.pk).status


# --- maintenance ------------------------------------------------------------------------------------------------
def _maintenance(ops, components, start_in=dt.timedelta(hours=2), length=dt.timedelta(hours=1), **extra):
    now = timezone.now()
    return maintenance_create(data={
        "name": "DB upgrade", "body": "Upgrading the database.", "scheduled_for": now + start_in,
        "scheduled_until": now + start_in + length, "components": [components["Database"]], **extra}, by=ops)


def test_maintenance_lifecycle__start_verify_complete__components_under_maintenance_then_back(ops, components):
    m = _maintenance(ops, components)
    db = components["Database"]
    maintenance_transition(maintenance=m, name="start", by=ops)
    assert m.status == "in_progress" and _status(db) == st.MAINTENANCE
    maintenance_transition(maintenance=m, name="verify", by=ops, body="Checking.")
    assert m.status == "verifying" and _status(db) == st.MAINTENANCE
    maintenance_transition(maintenance=m, name="complete", by=ops)
    assert m.status == "completed" and _status(db) == st.OPERATIONAL
    assert [u.status for u in m.updates.order_by("created_at", "id")] == [
        "scheduled", "in_progress", "verifying", "completed"]
    assert m.updates.get(status="in_progress").affected_components[0]["new_status"] == st.MAINTENANCE
    with pytest.raises(errors.TransitionNotAllowed):
        maintenance_transition(maintenance=m, name="start", by=ops)


def test_maintenance_complete__incident_still_open__component_returns_to_incident_status(ops, components):
    m = _maintenance(ops, components)
    maintenance_transition(maintenance=m, name="start", by=ops)
    incidents.incident_create(name="DB errors", body="Errors.", by=ops, components={components["Database"]: st.MAJOR})
    maintenance_transition(maintenance=m, name="complete", by=ops)
    assert _status(components["Database"]) == st.MAJOR


def test_maintenance_create__end_before_start__400(ops, components):
    with pytest.raises(errors.ValidationFailed):
        _maintenance(ops, components, length=-dt.timedelta(hours=1))


# --- beat -----------------------------------------------------------------------------------------------------------
def test_maintenance_tick__due_and_over__started_then_completed_idempotently(ops, components):
    m = _maintenance(ops, components, start_in=dt.timedelta(minutes=10))
    later = timezone.now() + dt.timedelta(minutes=11)
    assert maintenance_tick(now=later)["started"] == [m.pk]
    assert Maintenance.objects.get(pk=m.pk).status == "in_progress" and _status(components["Database"]) == st.MAINTENANCE
    assert maintenance_tick(now=later)["started"] == []  # a second tick does nothing
    end = m.scheduled_until + dt.timedelta(seconds=1)
    assert maintenance_tick(now=end)["completed"] == [m.pk]
    assert Maintenance.objects.get(pk=m.pk).status == "completed" and _status(components["Database"]) == st.OPERATIONAL


def test_maintenance_tick__auto_start_off__left_for_the_operator(ops, components):
    m = _maintenance(ops, components, start_in=dt.timedelta(minutes=1), auto_start=False)
    maintenance_tick(now=timezone.now() + dt.timedelta(minutes=5))
    assert Maintenance.objects.get(pk=m.pk).status == "scheduled"


def test_maintenance_tick__within_reminder_lead__reminds_once(ops, components, settings):
    m = _maintenance(ops, components, start_in=dt.timedelta(hours=2), remind_before=dt.timedelta(hours=3))
    assert maintenance_tick()["reminded"] == [m.pk]
    assert maintenance_tick()["reminded"] == []
    reminded = AuditEvent.objects.filter(action="maintenance.remind", object_id=str(m.pk))
    assert [e.actor_username for e in reminded] == ["system"]  # beat acts as the system actor
    far = _maintenance(ops, components, start_in=dt.timedelta(days=2))
    assert far.pk not in maintenance_tick()["reminded"]


def test_maintenance_update__start_moved__reminder_reset_and_changed_fields_audited(ops, components):
    m = _maintenance(ops, components, remind_before=dt.timedelta(hours=3))
    maintenance_tick()
    assert Maintenance.objects.get(pk=m.pk).reminded_at is not None
    later = m.scheduled_for + dt.timedelta(days=1)
    maintenance_update(maintenance=m, data={"scheduled_for": later, "scheduled_until": later + dt.timedelta(hours=1),
                                            "name": m.name}, by=ops)
    assert Maintenance.objects.get(pk=m.pk).reminded_at is None
    event = AuditEvent.objects.get(action="maintenance.update", object_id=str(m.pk))
    assert set(event.after) == {"scheduled_for", "scheduled_until"}


def test_maintenance_update__end_before_start_or_started__refused_nothing_saved(ops, components):
    m = _maintenance(ops, components)
    with pytest.raises(errors.ValidationFailed):
        maintenance_update(maintenance=m, data={"scheduled_until": m.scheduled_for - dt.timedelta(minutes=1)}, by=ops)
    maintenance_transition(maintenance=m, name="start", by=ops)
    with pytest.raises(errors.TransitionNotAllowed):
        maintenance_update(maintenance=m, data={"name": "Renamed"}, by=ops)
    assert Maintenance.objects.get(pk=m.pk).name == "DB upgrade"
    assert not AuditEvent.objects.filter(action="maintenance.update").exists()


def test_maintenance_cancel__scheduled__leaves_the_public_page_and_tells_subscribers(ops, users, components, client,
                                                                                    monkeypatch):
    import json

    from monitoring.statuspage import publishing
    from monitoring.statuspage.models import Delivery, Subscriber

    Subscriber.objects.create(kind="email", email="reader@example.com", confirmed_at=timezone.now())
    m = _maintenance(ops, components)
    publishing.publish_site()
    upcoming = json.loads(client.get("/status/api/v2/scheduled-maintenances/upcoming.json").content)
    assert [x["name"] for x in upcoming["scheduled_maintenances"]] == ["DB upgrade"]
    with pytest.raises(errors.PermissionDenied):
        maintenance_transition(maintenance=m, name="cancel", by=users["dev"])
    told = []
    monkeypatch.setattr("monitoring.statuspage.maintenance.notify_later", lambda *args: told.append(args))
    maintenance_transition(maintenance=m, name="cancel", by=ops)
    assert told and told[0][:2] == ("maintenance", m.pk)
    assert m.status == "cancelled" and _status(components["Database"]) == st.OPERATIONAL
    assert m.updates.order_by("-id").first().body == "This scheduled maintenance has been cancelled."
    publishing.publish_pending()
    for name in ("summary.json", "scheduled-maintenances.json", "scheduled-maintenances/upcoming.json"):
        doc = json.loads(client.get(f"/status/api/v2/{name}").content)
        assert doc["scheduled_maintenances"] == [], name
    from monitoring.statuspage.subscribers import notification_fan_out

    notification_fan_out(kind="maintenance", obj_id=m.pk, event=told[0][2])
    delivery = Delivery.objects.get(event=told[0][2])
    assert "(Cancelled)" in delivery.subject and "has been cancelled" in delivery.body
    with pytest.raises(errors.TransitionNotAllowed):
        maintenance_transition(maintenance=m, name="start", by=ops)


def test_maintenance_cancel__started__refused_nothing_changed(ops, components):
    m = _maintenance(ops, components, start_in=-dt.timedelta(minutes=1))
    maintenance_transition(maintenance=m, name="start", by=ops)
    with pytest.raises(errors.TransitionNotAllowed):
        maintenance_transition(maintenance=m, name="cancel", by=ops)
    assert Maintenance.objects.get(pk=m.pk).status == "in_progress"
