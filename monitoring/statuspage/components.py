"""Components, component groups and their status history (the source of uptime bars and percentages)."""
import re

from django.db import transaction
from django.utils import timezone

from pmrelease import audit, errors
from pmrelease.services import model_create, model_delete, model_update

from . import status as st
from .access import require_operator
from .models import (
    ACTIVE_MAINTENANCE,
    UNRESOLVED,
    AffectedComponent,
    Component,
    ComponentGroup,
    ComponentStatusChange,
    Maintenance,
)
from .publishing import publish_later

COMPONENT_FIELDS = ["name", "description", "group", "position", "showcase", "only_show_if_degraded",
                    "environments", "start_date"]
GROUP_FIELDS = ["name", "description", "position"]


def parse_id(value):
    """A database id from outside input, or None when it is not one (never raises)."""
    text = str(value).strip()
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


def apply_status(component, new_status, *, at=None, incident=None, maintenance=None):
    """Move one component to ``new_status`` and keep the history. Returns the change (dict) or None."""
    if new_status not in st.COMPONENT_STATUSES:
        raise errors.ValidationFailed(f"unknown component status '{new_status}'",
                                      field_errors={"status": [f"must be one of {', '.join(st.COMPONENT_STATUSES)}"]})
    locked = Component.objects.select_for_update().get(pk=component.pk)
    if locked.status == new_status:
        return None
    at = at or timezone.now()
    old = locked.status
    ComponentStatusChange.objects.create(component=locked, old_status=old, new_status=new_status, at=at,
                                         incident=incident, maintenance=maintenance)
    Component.objects.filter(pk=locked.pk).update(status=new_status, updated_at=at)
    component.status = new_status
    return {"code": str(locked.pk), "name": locked.name, "old_status": old, "new_status": new_status}


def resting_status(component, *, excluding_incident=None, excluding_maintenance=None):
    """The status a component returns to: the worst any other open published incident holds it in, under
    maintenance during an active maintenance, otherwise operational."""
    held = AffectedComponent.objects.filter(
        component=component, incident__status__in=UNRESOLVED, incident__published_at__isnull=False)
    if excluding_incident is not None:
        held = held.exclude(incident=excluding_incident)
    statuses = list(held.values_list("status", flat=True))
    active = Maintenance.objects.filter(components=component, status__in=ACTIVE_MAINTENANCE)
    if excluding_maintenance is not None:
        active = active.exclude(pk=excluding_maintenance.pk)
    if active.exists():
        statuses.append(st.MAINTENANCE)
    return st.worst(statuses)


def component_create(*, data, by):
    """A new component (operational unless ``data["status"]`` says otherwise), with the first row of its history."""
    require_operator(by)
    data = dict(data)
    initial = data.pop("status", st.OPERATIONAL)
    with transaction.atomic():
        component = model_create(model=Component, data=data, fields=COMPONENT_FIELDS, by=by,
                                 action="component.create", clean_exclude=["status"])
        ComponentStatusChange.objects.create(component=component, old_status="", new_status=st.OPERATIONAL,
                                             at=component.created_at)
        if initial != st.OPERATIONAL:
            apply_status(component, initial)
            audit.record(action="component.status", obj=component, by=by, reason="initial status",
                         before={"status": st.OPERATIONAL}, after={"status": initial})
        publish_later()
    return component


def _edit(row, *, data, fields, by, action, clean_exclude=None):
    """Set the allowed ``fields`` of ``row`` (locked, validated, the diff audited); re-publish if anything changed."""
    require_operator(by)
    with transaction.atomic():
        locked = type(row).objects.select_for_update().get(pk=row.pk)
        locked.updated_at = timezone.now()
        locked, changed = model_update(instance=locked, data=data, fields=fields, by=by, action=action,
                                       clean_exclude=clean_exclude)
        if changed:
            publish_later()
    return locked


def component_update(*, component, data, by):
    """Edit a component's fields (its status changes through ``component_set_status`` and incidents)."""
    return _edit(component, data=data, fields=COMPONENT_FIELDS, by=by, action="component.update",
                 clean_exclude=["status"])


def component_set_status(*, component, status, by, reason=""):
    """An operator sets a component's status by hand (outside any incident)."""
    require_operator(by)
    with transaction.atomic():
        change = apply_status(component, status)
        if change:
            audit.record(action="component.status", obj=component, by=by, reason=reason,
                         before={"status": change["old_status"]}, after={"status": status})
            publish_later()
    component.refresh_from_db()
    return component


def component_delete(*, component, by):
    require_operator(by)
    with transaction.atomic():
        model_delete(instance=component, by=by, fields=COMPONENT_FIELDS, action="component.delete")
        publish_later()


def group_create(*, data, by):
    require_operator(by)
    with transaction.atomic():
        group = model_create(model=ComponentGroup, data=data, fields=GROUP_FIELDS, by=by,
                             action="componentgroup.create")
        publish_later()
    return group


def group_update(*, group, data, by):
    return _edit(group, data=data, fields=GROUP_FIELDS, by=by, action="componentgroup.update")


def group_delete(*, group, by):
    """Delete an empty component group (audited, re-published)."""
    require_operator(by)
    with transaction.atomic():
        locked = ComponentGroup.objects.select_for_update().get(pk=group.pk)
        if locked.components.exists():
            raise errors.TransitionNotAllowed("move or delete the group's components first")
        model_delete(instance=locked, by=by, action="componentgroup.delete")
        publish_later()
