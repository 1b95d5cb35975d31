"""Scheduled maintenance: create, edit while scheduled, start/verify/complete, and the beat tick that starts,
completes and reminds on time."""
import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from pmrelease import audit, errors
from pmrelease.services import model_create, model_update

from . import status as st
from . import texts
from .access import require_operator
from .components import apply_status, resting_status
from .models import ACTIVE_MAINTENANCE, Maintenance, MaintenanceStatus, MaintenanceUpdate
from .publishing import publish_later
from .subscribers import notify_later

MAINTENANCE_FIELDS = ["name", "body", "scheduled_for", "scheduled_until", "auto_start", "auto_complete",
                      "remind_before", "components"]


def _check_window(scheduled_for, scheduled_until):
    if scheduled_for and scheduled_until and scheduled_until <= scheduled_for:
        raise errors.ValidationFailed("the maintenance must end after it starts",
                                      field_errors={"scheduled_until": ["must be after scheduled_for"]})


def maintenance_create(*, data, by):
    require_operator(by)
    _check_window(data.get("scheduled_for"), data.get("scheduled_until"))
    with transaction.atomic():
        maintenance = model_create(model=Maintenance, data=data, fields=MAINTENANCE_FIELDS, by=by,
                                   action="maintenance.create", clean_exclude=["status", "created_by"],
                                   extra={"created_by": by if getattr(by, "is_authenticated", False) else None})
        MaintenanceUpdate.objects.create(maintenance=maintenance, status=MaintenanceStatus.SCHEDULED,
                                         body=maintenance.body, created_by=maintenance.created_by)
        notify_later("maintenance", maintenance.pk, f"maintenance-{maintenance.pk}-scheduled")
        publish_later(maintenance)
    return maintenance


def maintenance_update(*, maintenance, data, by):
    """Edit a scheduled maintenance (name, text, components, window, automation); audited and re-published.
    Moving the start clears the reminder so a new one goes out before the new start."""
    require_operator(by)
    with transaction.atomic():
        locked = Maintenance.objects.select_for_update().get(pk=maintenance.pk)
        if locked.status != MaintenanceStatus.SCHEDULED:
            raise errors.TransitionNotAllowed(f"maintenance '{locked.name}' is {locked.status}: only scheduled "
                                              "maintenance can be edited")
        _check_window(data.get("scheduled_for", locked.scheduled_for),
                      data.get("scheduled_until", locked.scheduled_until))
        if "scheduled_for" in data and data["scheduled_for"] != locked.scheduled_for:
            locked.reminded_at = None
        locked.updated_at = timezone.now()
        locked, changed = model_update(instance=locked, data=data, fields=MAINTENANCE_FIELDS, by=by,
                                       action="maintenance.update", clean_exclude=["status", "created_by"])
        if changed:
            publish_later(locked)
    return locked


MAINTENANCE_MESSAGES = {
    "start": "The scheduled maintenance is in progress.",
    "verify": "The maintenance work is done; we are verifying that everything works.",
    "complete": "The scheduled maintenance has been completed.",
    "cancel": "This scheduled maintenance has been cancelled.",
}


def maintenance_transition(*, maintenance, name, by, body=""):
    """start: components go under maintenance; verify; complete: components return to their resting status;
    cancel (before it started): it leaves the public page and its feeds, subscribers are told."""
    require_operator(by)
    return _transition(maintenance=maintenance, name=name, by=by, body=body)


def maintenance_withdraw(*, maintenance, by, body=""):
    """Cancel a scheduled maintenance on behalf of what announced it (a change request that is cancelled): the
    right to do so is the caller's (the change's own rules), not the status page operator's."""
    return _transition(maintenance=maintenance, name="cancel", by=by, body=body)


def _transition(*, maintenance, name, by, body):
    if name not in MAINTENANCE_MESSAGES:
        raise errors.ValidationFailed(f"unknown transition '{name}'; one of {', '.join(MAINTENANCE_MESSAGES)}")
    texts.require(body=body)
    body = (body or "").strip() or MAINTENANCE_MESSAGES[name]
    with transaction.atomic():
        locked = Maintenance.objects.select_for_update().get(pk=maintenance.pk)
        method = getattr(locked, name)
        if not can_proceed(method):
            raise errors.TransitionNotAllowed(
                f"maintenance '{locked.name}' is {locked.status}: '{name}' is not allowed from this state")
        method(by=by, reason=body)
        locked.updated_at = timezone.now()
        locked.save()
        changes = []
        for component in locked.components.all():
            if name == "start":
                target = st.worst([st.MAINTENANCE, resting_status(component)])
            elif name == "complete":
                target = resting_status(component, excluding_maintenance=locked)
            else:
                continue
            change = apply_status(component, target, maintenance=locked)
            if change:
                changes.append(change)
        update = MaintenanceUpdate.objects.create(
            maintenance=locked, status=locked.status, body=body, affected_components=changes,
            created_by=by if getattr(by, "is_authenticated", False) else None)
        notify_later("maintenance", locked.pk, f"maintenance-{locked.pk}-update-{update.pk}")
        publish_later(locked)
    maintenance.refresh_from_db()
    return maintenance


def maintenance_tick(*, now=None):
    """Beat: start maintenance that is due, complete maintenance that has run its time, send reminders.

    Returns {"started": [ids], "completed": [ids], "reminded": [ids]}. Safe to run twice: each step looks
    at the current state first.
    """
    now = now or timezone.now()
    done = {"started": [], "completed": [], "reminded": []}
    due = Maintenance.objects.filter(status=MaintenanceStatus.SCHEDULED, auto_start=True, scheduled_for__lte=now)
    for maintenance in due:
        try:
            maintenance_transition(maintenance=maintenance, name="start", by=None)
            done["started"].append(maintenance.pk)
        except errors.TransitionNotAllowed:
            continue  # someone else started it meanwhile
    over = Maintenance.objects.filter(status__in=ACTIVE_MAINTENANCE, auto_complete=True, scheduled_until__lte=now)
    for maintenance in over:
        try:
            maintenance_transition(maintenance=maintenance, name="complete", by=None)
            done["completed"].append(maintenance.pk)
        except errors.TransitionNotAllowed:
            continue
    default_lead = dt.timedelta(minutes=settings.STATUS_MAINTENANCE_REMINDER_MINUTES)
    upcoming = Maintenance.objects.filter(status=MaintenanceStatus.SCHEDULED, reminded_at__isnull=True,
                                          scheduled_for__gt=now)
    for maintenance in upcoming:
        lead = maintenance.remind_before or default_lead
        if maintenance.scheduled_for - lead > now:
            continue
        with transaction.atomic():
            claimed = Maintenance.objects.filter(pk=maintenance.pk, reminded_at__isnull=True).update(reminded_at=now)
            if claimed:
                audit.record(action="maintenance.remind", obj=maintenance, by=None,
                             after={"scheduled_for": maintenance.scheduled_for})
                notify_later("maintenance", maintenance.pk, f"maintenance-{maintenance.pk}-reminder")
                done["reminded"].append(maintenance.pk)
    return done
