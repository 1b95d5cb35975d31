"""Operations on the status page: components, incidents, maintenance, subscribers and publishing.

Each service checks permission, opens a transaction, runs the transition, saves, records the audit event
and dispatches Celery tasks on commit (re-publishing the static site, notifying subscribers). Views, admin,
API, commands and tasks all come through here.
"""
import datetime as dt
import re

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django_fsm import can_proceed

from pmrelease import audit, errors
from pmrelease.roles import Role, user_roles

from . import status as st
from .models import (
    ACTIVE_MAINTENANCE,
    UNRESOLVED,
    AffectedComponent,
    Component,
    ComponentGroup,
    ComponentStatusChange,
    Delivery,
    DeliveryStatus,
    Impact,
    Incident,
    IncidentPolicy,
    IncidentStatus,
    IncidentUpdate,
    Maintenance,
    MaintenanceStatus,
    MaintenanceUpdate,
    Policy,
    Subscriber,
    SubscriberKind,
)

COMPONENT_FIELDS = ["name", "description", "group", "position", "showcase", "only_show_if_degraded",
                    "environments", "start_date"]
GROUP_FIELDS = ["name", "description", "position"]
MAINTENANCE_FIELDS = ["name", "body", "scheduled_for", "scheduled_until", "auto_start", "auto_complete",
                      "remind_before", "components"]


# --- permission -----------------------------------------------------------------------------------------
def can_operate(user):
    """Operators of the status page: superusers, the operations role, or holders of change_incident."""
    if not getattr(user, "is_authenticated", False):
        return False
    return (user.is_superuser or Role.OPERATIONS.value in user_roles(user)
            or user.has_perm("monitoring.change_incident"))


def _require_operator(by):
    if by is None:  # the system itself (deployment engine, beat)
        return
    if not can_operate(by):
        raise errors.PermissionDenied(
            f"{getattr(by, 'username', 'anonymous')} may not operate the status page "
            f"(needs the '{Role.OPERATIONS.value}' role or the monitoring.change_incident permission)")


# --- dispatch on commit ------------------------------------------------------------------------------------
def publish_later():
    """Re-render the static site once the current transaction commits."""
    from .tasks import publish_status_site

    publish_status_site.delay_on_commit()


def notify_later(kind, obj_id, event):
    from .tasks import notify_subscribers

    notify_subscribers.delay_on_commit(kind, obj_id, event)


# --- components ---------------------------------------------------------------------------------------------
def _apply_status(component, new_status, *, at=None, incident=None, maintenance=None):
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


def _resting_status(component, *, excluding_incident=None, excluding_maintenance=None):
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
    _require_operator(by)
    data = dict(data)
    environments = data.pop("environments", None)
    initial = data.pop("status", st.OPERATIONAL)
    with transaction.atomic():
        component = Component(**data)
        errors.full_clean(component, exclude=["status"])
        component.save()
        if environments is not None:
            component.environments.set(environments)
        ComponentStatusChange.objects.create(component=component, old_status="", new_status=st.OPERATIONAL,
                                             at=component.created_at)
        if initial != st.OPERATIONAL:
            _apply_status(component, initial)
        audit.record(action="component.create", obj=component, by=by,
                     after={**audit.snapshot(component, fields=COMPONENT_FIELDS), "status": initial})
        publish_later()
    return component


def component_update(*, component, data, by):
    _require_operator(by)
    data = dict(data)
    unknown = set(data) - set(COMPONENT_FIELDS)
    if unknown:
        raise errors.ValidationFailed(f"unknown or read-only fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = Component.objects.select_for_update().get(pk=component.pk)
        before = audit.snapshot(locked, fields=COMPONENT_FIELDS)
        environments = data.pop("environments", None)
        for key, value in data.items():
            setattr(locked, key, value)
        errors.full_clean(locked, exclude=["status"])
        locked.updated_at = timezone.now()
        locked.save()
        if environments is not None:
            locked.environments.set(environments)
        b, a = audit.diff(before, audit.snapshot(locked, fields=COMPONENT_FIELDS))
        if a:
            audit.record(action="component.update", obj=locked, by=by, before=b, after=a)
        publish_later()
    return locked


def component_set_status(*, component, status, by, reason=""):
    """An operator sets a component's status by hand (outside any incident)."""
    _require_operator(by)
    with transaction.atomic():
        change = _apply_status(component, status)
        if change:
            audit.record(action="component.status", obj=component, by=by, reason=reason,
                         before={"status": change["old_status"]}, after={"status": status})
            publish_later()
    component.refresh_from_db()
    return component


def component_delete(*, component, by):
    _require_operator(by)
    with transaction.atomic():
        audit.record(action="component.delete", obj=component, by=by,
                     before=audit.snapshot(component, fields=COMPONENT_FIELDS))
        component.delete()
        publish_later()


def group_save(*, group, data, by):
    """Create (``group`` None) or edit a component group."""
    _require_operator(by)
    with transaction.atomic():
        before = audit.snapshot(group, fields=GROUP_FIELDS) if group else None
        group = group or ComponentGroup()
        for key, value in data.items():
            setattr(group, key, value)
        errors.full_clean(group)
        group.save()
        after = audit.snapshot(group, fields=GROUP_FIELDS)
        if before is None:
            audit.record(action="componentgroup.create", obj=group, by=by, after=after)
        else:
            b, a = audit.diff(before, after)
            if a:
                audit.record(action="componentgroup.update", obj=group, by=by, before=b, after=a)
        publish_later()
    return group


def group_delete(*, group, by):
    """Delete an empty component group (audited, re-published)."""
    _require_operator(by)
    with transaction.atomic():
        locked = ComponentGroup.objects.select_for_update().get(pk=group.pk)
        if locked.components.exists():
            raise errors.TransitionNotAllowed("move or delete the group's components first")
        audit.record(action="componentgroup.delete", obj=locked, by=by, before=audit.snapshot(locked))
        locked.delete()
        publish_later()


def record_admin_edit(*, obj, before, fields, by, created=False):
    """Audit an edit the admin's forms validated and saved (component groups, subscribers, policies)."""
    name = obj._meta.model_name
    after = audit.snapshot(obj, fields=fields)
    if created:
        audit.record(action=f"{name}.create", obj=obj, by=by, after=after)
    else:
        b, a = audit.diff(before, after)
        if a:
            audit.record(action=f"{name}.update", obj=obj, by=by, before=b, after=a)
    publish_later()


# --- incidents ----------------------------------------------------------------------------------------------
def _lock_incident(incident):
    return Incident.objects.select_for_update().get(pk=incident.pk)


def parse_id(value):
    """A database id from outside input, or None when it is not one (never raises)."""
    text = str(value).strip()
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


def _normalise_statuses(component_statuses):
    """{component or id: status} → {Component: status}, validated."""
    result = {}
    for key, value in (component_statuses or {}).items():
        if isinstance(key, Component):
            component = key
        else:
            pk = parse_id(key)
            component = Component.objects.filter(pk=pk).first() if pk is not None else None
        if component is None:
            raise errors.ValidationFailed(f"unknown component {key}", field_errors={"components": [f"unknown component {key}"]})
        if value not in st.COMPONENT_STATUSES:
            raise errors.ValidationFailed(
                f"unknown component status '{value}'",
                field_errors={"components": [f"status must be one of {', '.join(st.COMPONENT_STATUSES)}"]})
        result[component] = value
    return result


def _apply_incident_statuses(incident, statuses):
    """Hold each component in its status for this incident; move the public status if published."""
    changes = []
    for component, status in statuses.items():
        AffectedComponent.objects.update_or_create(incident=incident, component=component,
                                                   defaults={"status": status})
        if incident.is_published:
            target = st.worst([status, _resting_status(component, excluding_incident=incident)])
            change = _apply_status(component, target, incident=incident)
            if change:
                changes.append(change)
    return changes


def _add_update(incident, body, by, changes, status=None):
    return IncidentUpdate.objects.create(incident=incident, status=status or incident.status, body=body,
                                         affected_components=changes or [],
                                         created_by=by if getattr(by, "is_authenticated", False) else None)


INCIDENT_BACKDATE_LIMIT = dt.timedelta(days=366)


def incident_create(*, name, body, by, impact=Impact.MINOR, components=None, publish=True, environment=None,
                    started_at=None):
    """Open an incident (investigating) with its first update. ``components``: {component or id: status}.

    ``publish=False`` makes a draft: nothing public changes until ``incident_publish``.
    """
    _require_operator(by)
    if not (name or "").strip() or not (body or "").strip():
        raise errors.ValidationFailed("an incident needs a name and a first update",
                                      field_errors={k: ["This field is required."] for k, v in
                                                    (("name", name), ("body", body)) if not (v or "").strip()})
    if impact not in Impact.values:
        raise errors.ValidationFailed("invalid impact", field_errors={"impact": [f"must be one of {', '.join(Impact.values)}"]})
    statuses = _normalise_statuses(components)
    now = timezone.now()
    if started_at is not None and not (now - INCIDENT_BACKDATE_LIMIT <= started_at <= now + dt.timedelta(minutes=5)):
        raise errors.ValidationFailed("invalid start", field_errors={"started_at": [
            f"must be between {INCIDENT_BACKDATE_LIMIT.days} days ago and now"]})
    with transaction.atomic():
        incident = Incident(name=name.strip(), impact=impact, environment=environment, started_at=started_at or now,
                            created_by=by if getattr(by, "is_authenticated", False) else None,
                            published_at=now if publish else None)
        errors.full_clean(incident, exclude=["status", "environment", "created_by"])
        incident.save()
        changes = _apply_incident_statuses(incident, statuses)
        _add_update(incident, body, by, changes)
        audit.record(action="incident.create", obj=incident, by=by,
                     after={"name": incident.name, "impact": impact, "published": publish,
                            "components": {str(c.pk): s for c, s in statuses.items()}})
        if publish:
            notify_later("incident", incident.pk, f"incident-{incident.pk}-created")
            publish_later()
    return incident


def incident_publish(*, incident, by):
    """Publish a draft: its components take their statuses and subscribers hear about it."""
    _require_operator(by)
    with transaction.atomic():
        locked = _lock_incident(incident)
        if locked.is_published:
            raise errors.TransitionNotAllowed(f"incident '{locked.name}' is already published")
        locked.published_at = timezone.now()
        locked.updated_at = locked.published_at
        locked.save(update_fields=["published_at", "updated_at"])
        changes = []
        if not locked.is_resolved:
            statuses = {a.component: a.status for a in locked.affected.select_related("component")}
            changes = _apply_incident_statuses(locked, statuses)
        first = locked.updates.order_by("created_at", "id").first()
        if first is not None and changes:
            first.affected_components = changes
            first.save(update_fields=["affected_components"])
        audit.record(action="incident.publish", obj=locked, by=by, after={"published_at": locked.published_at})
        notify_later("incident", locked.pk, f"incident-{locked.pk}-created")
        publish_later()
    return locked


INCIDENT_TRANSITIONS = {"identify": IncidentStatus.IDENTIFIED, "monitor": IncidentStatus.MONITORING,
                        "resolve": IncidentStatus.RESOLVED, "publish_postmortem": IncidentStatus.POSTMORTEM}


def incident_transition(*, incident, name, by, body, component_statuses=None):
    """Move an incident along its FSM; every transition adds a public update with its component changes.

    On resolve, components not given a status return to their resting status (operational unless another
    open incident or an active maintenance holds them).
    """
    _require_operator(by)
    if name not in INCIDENT_TRANSITIONS:
        raise errors.ValidationFailed(f"unknown transition '{name}'; one of {', '.join(INCIDENT_TRANSITIONS)}")
    if not (body or "").strip():
        raise errors.ValidationFailed("an update needs a message", field_errors={"body": ["This field is required."]})
    statuses = _normalise_statuses(component_statuses)
    with transaction.atomic():
        locked = _lock_incident(incident)
        method = getattr(locked, name)
        if not can_proceed(method):
            raise errors.TransitionNotAllowed(
                f"incident '{locked.name}' is {locked.status}: '{name}' is not allowed from this state")
        before_status = locked.status
        method(by=by, reason=body.strip())
        if name == "publish_postmortem":
            locked.postmortem = body.strip()
        locked.updated_at = timezone.now()
        locked.save()
        changes = []
        if name == "resolve":
            for affected in locked.affected.select_related("component"):
                component = affected.component
                target = statuses.pop(component, None) or _resting_status(component, excluding_incident=locked)
                if locked.is_published:
                    change = _apply_status(component, st.worst([target, _resting_status(
                        component, excluding_incident=locked)]), incident=locked)
                    if change:
                        changes.append(change)
        elif before_status in UNRESOLVED:
            changes = _apply_incident_statuses(locked, statuses)
        update = _add_update(locked, body.strip(), by, changes)
        if locked.is_published:
            notify_later("incident", locked.pk, f"incident-{locked.pk}-update-{update.pk}")
            publish_later()
    incident.refresh_from_db()
    return incident


def incident_add_update(*, incident, body, by, component_statuses=None):
    """A public update without a status change (e.g. "still investigating"), with optional component changes."""
    _require_operator(by)
    if not (body or "").strip():
        raise errors.ValidationFailed("an update needs a message", field_errors={"body": ["This field is required."]})
    statuses = _normalise_statuses(component_statuses)
    with transaction.atomic():
        locked = _lock_incident(incident)
        if locked.is_resolved and statuses:
            raise errors.TransitionNotAllowed(f"incident '{locked.name}' is {locked.status}: component statuses "
                                              "can only change while it is unresolved")
        changes = _apply_incident_statuses(locked, statuses)
        locked.updated_at = timezone.now()
        locked.save(update_fields=["updated_at"])
        update = _add_update(locked, body.strip(), by, changes)
        audit.record(action="incident.update", obj=locked, by=by, reason=body.strip(),
                     after={"update": update.pk, "components": changes})
        if locked.is_published:
            notify_later("incident", locked.pk, f"incident-{locked.pk}-update-{update.pk}")
            publish_later()
    return update


def incident_delete_draft(*, incident, by):
    _require_operator(by)
    with transaction.atomic():
        locked = _lock_incident(incident)
        if locked.is_published:
            raise errors.TransitionNotAllowed("published incidents are part of the public record and cannot be "
                                              "deleted; resolve them instead")
        audit.record(action="incident.delete", obj=locked, by=by, before={"name": locked.name})
        locked.delete()


def available_incident_actions(incident, user):
    if not can_operate(user):
        return []
    actions = [] if incident.is_published else ["publish"]
    actions += [name for name in INCIDENT_TRANSITIONS if can_proceed(getattr(incident, name))]
    return actions


# --- the deployment engine's entry point ------------------------------------------------------------------------
def incident_policy_for(environment):
    """The stored policy, else the default: draft for production-tier environments, none otherwise."""
    row = IncidentPolicy.objects.filter(environment=environment).first()
    if row is not None:
        return row.policy
    return Policy.DRAFT if getattr(environment, "is_production", False) else Policy.NONE


def incident_policy_set(*, environment, policy, by):
    _require_operator(by)
    if policy not in Policy.values:
        raise errors.ValidationFailed("invalid policy", field_errors={"policy": [f"must be one of {', '.join(Policy.values)}"]})
    with transaction.atomic():
        row, created = IncidentPolicy.objects.select_for_update().get_or_create(
            environment=environment, defaults={"policy": policy})
        before = None if created else {"policy": row.policy}
        row.policy = policy
        row.save()
        audit.record(action="incidentpolicy.set", obj=row, by=by, before=before, after={"policy": policy})
    return row


def incident_for_deployment(*, environment, title, body, automatic_rollback, by=None):
    """Open an incident for a failed production deployment or an automatic rollback in ``environment``, on
    the components linked to it, following the environment's policy (draft | publish | none).

    "draft" creates an unpublished incident for an operator to publish; "publish" publishes it at once with
    major impact (components in partial outage, or major outage when the deployment failed outright);
    "none" does nothing. Returns the incident or None. Audited.
    """
    policy = incident_policy_for(environment)
    if policy == Policy.NONE:
        return None
    components = list(Component.objects.filter(environments=environment))
    component_status = st.PARTIAL if automatic_rollback else st.MAJOR
    cause = "automatic rollback" if automatic_rollback else "failed deployment"
    with transaction.atomic():
        incident = incident_create(
            name=title, body=body, by=None, impact=Impact.MAJOR, environment=environment,
            components={c: component_status for c in components}, publish=(policy == Policy.PUBLISH))
        audit.record(action="incident.from_deployment", obj=incident, by=by,
                     reason=f"{cause} in {environment.name}",
                     after={"environment": environment.name, "policy": policy,
                            "automatic_rollback": bool(automatic_rollback),
                            "components": [c.pk for c in components]})
    return incident


def on_deployment_finished(sender, *, deployment, automatic_rollback, reason, **kwargs):
    """Receiver of ``releases.signals.deployment_finished``: an automatic rollback anywhere, or a production
    deployment that failed or was rolled back, opens an incident (as the environment's policy says)."""
    dep = deployment
    if dep.status == "succeeded" or not (automatic_rollback or dep.environment.is_production):
        return None
    if automatic_rollback:
        title = f"Automatic rollback of {dep.release.version} on {dep.environment.name}"
    elif dep.status == "rolled_back":
        title = f"{dep.release.version} rolled back on {dep.environment.name} by an operator"
    else:
        title = f"Deployment of {dep.release.version} to {dep.environment.name} failed"
    return incident_for_deployment(environment=dep.environment, title=title, body=reason,
                                   automatic_rollback=automatic_rollback)


# --- scheduled maintenance --------------------------------------------------------------------------------------
def maintenance_create(*, data, by):
    _require_operator(by)
    data = dict(data)
    components = data.pop("components", [])
    unknown = set(data) - set(MAINTENANCE_FIELDS)
    if unknown:
        raise errors.ValidationFailed(f"unknown or read-only fields: {', '.join(sorted(unknown))}")
    if data.get("scheduled_for") and data.get("scheduled_until") and data["scheduled_until"] <= data["scheduled_for"]:
        raise errors.ValidationFailed("the maintenance must end after it starts",
                                      field_errors={"scheduled_until": ["must be after scheduled_for"]})
    with transaction.atomic():
        maintenance = Maintenance(created_by=by if getattr(by, "is_authenticated", False) else None, **data)
        errors.full_clean(maintenance, exclude=["status", "created_by"])
        maintenance.save()
        maintenance.components.set(components)
        MaintenanceUpdate.objects.create(maintenance=maintenance, status=MaintenanceStatus.SCHEDULED,
                                         body=maintenance.body, created_by=maintenance.created_by)
        audit.record(action="maintenance.create", obj=maintenance, by=by,
                     after=audit.snapshot(maintenance, fields=MAINTENANCE_FIELDS))
        notify_later("maintenance", maintenance.pk, f"maintenance-{maintenance.pk}-scheduled")
        publish_later()
    return maintenance


def maintenance_update(*, maintenance, data, by):
    """Edit a scheduled maintenance (name, text, components, window, automation); audited and re-published.
    Moving the start clears the reminder so a new one goes out before the new start."""
    _require_operator(by)
    data = dict(data)
    components = data.pop("components", None)
    unknown = set(data) - set(MAINTENANCE_FIELDS)
    if unknown:
        raise errors.ValidationFailed(f"unknown or read-only fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = Maintenance.objects.select_for_update().get(pk=maintenance.pk)
        if locked.status != MaintenanceStatus.SCHEDULED:
            raise errors.TransitionNotAllowed(f"maintenance '{locked.name}' is {locked.status}: only scheduled "
                                              "maintenance can be edited")
        before = audit.snapshot(locked, fields=MAINTENANCE_FIELDS)
        before["components"] = sorted(locked.components.values_list("pk", flat=True))
        for key, value in data.items():
            setattr(locked, key, value)
        if locked.scheduled_until <= locked.scheduled_for:
            raise errors.ValidationFailed("the maintenance must end after it starts",
                                          field_errors={"scheduled_until": ["must be after scheduled_for"]})
        errors.full_clean(locked, exclude=["status", "created_by"])
        if before["scheduled_for"] != audit.snapshot(locked, fields=["scheduled_for"])["scheduled_for"]:
            locked.reminded_at = None
        locked.updated_at = timezone.now()
        locked.save()
        if components is not None:
            locked.components.set(components)
        after = audit.snapshot(locked, fields=MAINTENANCE_FIELDS)
        after["components"] = sorted(locked.components.values_list("pk", flat=True))
        b, a = audit.diff(before, after)
        if a:
            audit.record(action="maintenance.update", obj=locked, by=by, before=b, after=a)
            publish_later()
    return locked


MAINTENANCE_MESSAGES = {
    "start": "The scheduled maintenance is in progress.",
    "verify": "The maintenance work is done; we are verifying that everything works.",
    "complete": "The scheduled maintenance has been completed.",
}


def maintenance_transition(*, maintenance, name, by, body=""):
    """start: components go under maintenance; verify; complete: components return to their resting status."""
    _require_operator(by)
    if name not in MAINTENANCE_MESSAGES:
        raise errors.ValidationFailed(f"unknown transition '{name}'; one of {', '.join(MAINTENANCE_MESSAGES)}")
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
                target = st.worst([st.MAINTENANCE, _resting_status(component)])
            elif name == "complete":
                target = _resting_status(component, excluding_maintenance=locked)
            else:
                continue
            change = _apply_status(component, target, maintenance=locked)
            if change:
                changes.append(change)
        update = MaintenanceUpdate.objects.create(
            maintenance=locked, status=locked.status, body=body, affected_components=changes,
            created_by=by if getattr(by, "is_authenticated", False) else None)
        notify_later("maintenance", locked.pk, f"maintenance-{locked.pk}-update-{update.pk}")
        publish_later()
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


# --- subscribers ------------------------------------------------------------------------------------------------
TOKEN_SALT = "monitoring.subscriber"
CONFIRM_MAX_AGE = dt.timedelta(days=3)


def make_token(subscriber, purpose):
    return signing.dumps({"s": subscriber.pk, "p": purpose, "c": subscriber.created_at.timestamp()},
                         salt=TOKEN_SALT, compress=True)


def read_token(token, purpose, *, max_age):
    """The subscriber a token names, or ValidationFailed for forged, tampered, expired or stale tokens."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise errors.ValidationFailed("this link has expired; subscribe again to get a new one") from exc
    except signing.BadSignature as exc:
        raise errors.ValidationFailed("this link is not valid") from exc
    if not isinstance(data, dict) or data.get("p") != purpose:
        raise errors.ValidationFailed("this link is not valid")
    subscriber = Subscriber.objects.filter(pk=data.get("s")).first()
    if subscriber is None or abs(subscriber.created_at.timestamp() - float(data.get("c", 0))) > 0.001:
        raise errors.ValidationFailed("this link is not valid any more")
    return subscriber


def unsubscribe_max_age():
    return dt.timedelta(days=settings.STATUS_UNSUBSCRIBE_TOKEN_DAYS)


def public_url(path=""):
    base = settings.STATUS_PUBLIC_URL
    return f"{base.rstrip('/')}/{path.lstrip('/')}" if path else base.rstrip("/")


CONFIRMATION_RESEND_AFTER = dt.timedelta(minutes=10)


def subscribe_email(*, email, component_ids=()):
    """Start a double opt-in: a pending subscription and a confirmation e-mail (sent by Celery).

    Re-subscribing a pending or unsubscribed address starts over with fresh tokens; an active one is left
    as it is (and is told nothing new, so the form cannot be used to probe who subscribed).
    """
    from django.core.validators import validate_email

    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise errors.ValidationFailed("enter a valid e-mail address", field_errors={"email": exc.messages}) from exc
    if len(email) > 254:
        raise errors.ValidationFailed("enter a valid e-mail address",
                                      field_errors={"email": ["at most 254 characters"]})
    ids = [parse_id(i) for i in component_ids]
    if None in ids:
        bad = next(i for i, pk in zip(component_ids, ids, strict=True) if pk is None)
        raise errors.ValidationFailed(f"unknown component '{str(bad)[:40]}'",
                                      field_errors={"components": ["component ids are whole numbers"]})
    components = list(Component.objects.filter(pk__in=ids))
    with transaction.atomic():
        existing = Subscriber.objects.select_for_update().filter(kind=SubscriberKind.EMAIL, email=email).first()
        if existing is not None and existing.is_active:
            return existing
        if (existing is not None and not existing.unsubscribed_at
                and existing.created_at > timezone.now() - CONFIRMATION_RESEND_AFTER):
            return existing  # a confirmation went out moments ago: no mail flood through the public form
        if existing is not None:
            existing.delete()
        try:
            with transaction.atomic():
                subscriber = Subscriber.objects.create(kind=SubscriberKind.EMAIL, email=email)
        except IntegrityError as exc:
            raise errors.ValidationFailed("this address is being subscribed right now; try again") from exc
        subscriber.components.set(components)
        audit.record(action="subscriber.create", obj=subscriber, by=None,
                     after={"email": email, "components": [c.pk for c in components]})
        from .tasks import send_confirmation

        send_confirmation.delay_on_commit(subscriber.pk)
    return subscriber


def send_confirmation_email(*, subscriber):
    if subscriber.confirmed_at or subscriber.unsubscribed_at:
        return False
    context = {"product": settings.PRODUCT_NAME, "subscriber": subscriber,
               "confirm_url": public_url(f"subscriptions/confirm/{make_token(subscriber, 'confirm')}/"),
               "components": list(subscriber.components.all()), "page_url": public_url()}
    send_mail(subject=f"[{settings.PRODUCT_NAME} status] Confirm your subscription",
              message=render_to_string("emails/status_confirm.txt", context),
              from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=[subscriber.email])
    return True


def subscription_confirm(*, token):
    subscriber = read_token(token, "confirm", max_age=CONFIRM_MAX_AGE)
    if subscriber.unsubscribed_at:
        raise errors.ValidationFailed("this subscription was cancelled; subscribe again")
    with transaction.atomic():
        if subscriber.confirmed_at is None:
            subscriber.confirmed_at = timezone.now()
            subscriber.save(update_fields=["confirmed_at"])
            audit.record(action="subscriber.confirm", obj=subscriber, by=None)
    return subscriber


def unsubscribe(*, token):
    subscriber = read_token(token, "unsubscribe", max_age=unsubscribe_max_age())
    with transaction.atomic():
        if subscriber.unsubscribed_at is None:
            subscriber.unsubscribed_at = timezone.now()
            subscriber.save(update_fields=["unsubscribed_at"])
            audit.record(action="subscriber.unsubscribe", obj=subscriber, by=None)
    return subscriber


def webhook_target_problem(url):
    """Why the worker must not POST to ``url`` (None when it may): webhooks go to public addresses only, so a
    subscriber cannot make the worker reach loopback, link-local (cloud metadata), private or reserved hosts.
    ``STATUS_WEBHOOK_ALLOW_PRIVATE = True`` lifts this for deployments whose receivers are internal."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    if settings.STATUS_WEBHOOK_ALLOW_PRIVATE:
        return None
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in ("http", "https") or not host:
        return "only http(s) URLs with a host are accepted"
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError) as exc:
        return f"{host} does not resolve ({exc})"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            return f"{host} resolves to {ip}, which is not a public address"
    return None


def webhook_subscriber_create(*, url, components=(), by):
    _require_operator(by)
    problem = webhook_target_problem(url)
    if problem:
        raise errors.ValidationFailed(f"webhook URL refused: {problem}", field_errors={"webhook_url": [problem]})
    with transaction.atomic():
        subscriber = Subscriber(kind=SubscriberKind.WEBHOOK, webhook_url=url, confirmed_at=timezone.now())
        errors.full_clean(subscriber, exclude=["email"])
        subscriber.save()
        subscriber.components.set(components)
        audit.record(action="subscriber.create", obj=subscriber, by=by,
                     after={"webhook_url": url, "components": [c.pk for c in components]})
    return subscriber


# --- notifications ----------------------------------------------------------------------------------------------
def _subscribers_for(component_ids):
    result = []
    active = Subscriber.objects.filter(confirmed_at__isnull=False, unsubscribed_at__isnull=True)
    for subscriber in active.prefetch_related("components"):
        wanted = {c.pk for c in subscriber.components.all()}
        if not wanted or not component_ids or wanted & set(component_ids):
            result.append(subscriber)
    return result


def notification_fan_out(*, kind, obj_id, event):
    """One Delivery per interested subscriber (idempotent through the unique event key), each sent by a task."""
    from . import statuspage

    if kind == "incident":
        obj = Incident.objects.filter(pk=obj_id, published_at__isnull=False).first()
    else:
        obj = Maintenance.objects.filter(pk=obj_id).first()
    if obj is None:
        return []
    update = obj.updates.order_by("-created_at", "-id").first()
    component_ids = [c.pk for c in obj.components.all()]
    document = statuspage.incident_json(obj, maintenance=(kind == "maintenance"))
    reminder = event.endswith("-reminder")
    label = "Reminder: scheduled maintenance" if reminder else ("Maintenance" if kind == "maintenance" else "Incident")
    status_label = obj.get_status_display()
    subject = f"[{settings.PRODUCT_NAME} status] {label}: {obj.name} ({status_label})"
    created = []
    for subscriber in _subscribers_for(component_ids):
        context = {"product": settings.PRODUCT_NAME, "obj": obj, "kind": kind, "update": update,
                   "status_label": status_label, "reminder": reminder,
                   "link": public_url(f"incidents/{obj.pk}/") if kind == "incident" else public_url(),
                   "unsubscribe_url": public_url(f"subscriptions/unsubscribe/{make_token(subscriber, 'unsubscribe')}/")}
        payload = {"meta": {"unsubscribe": context["unsubscribe_url"], "event": event},
                   "page": {"id": statuspage.page_id(), "name": settings.PRODUCT_NAME},
                   ("scheduled_maintenance" if kind == "maintenance" else "incident"): document}
        delivery, was_created = Delivery.objects.get_or_create(
            subscriber=subscriber, event=event,
            defaults={"subject": subject[:250], "body": render_to_string("emails/status_notification.txt", context),
                      "payload": payload})
        if was_created:
            created.append(delivery.pk)
    from .tasks import deliver

    for pk in created:
        transaction.on_commit(lambda pk=pk: deliver.delay(pk))
    return created


class DeliveryFailed(Exception):
    """A delivery attempt failed; the task retries it."""


def delivery_send(*, delivery, final_attempt=False):
    """Send one notification. Raises DeliveryFailed on a transient failure (the task retries)."""
    import httpx
    from django.core.mail import EmailMessage

    if delivery.status != DeliveryStatus.PENDING:
        return delivery.status
    subscriber = delivery.subscriber
    if not subscriber.is_active:
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, last_error="unsubscribed")
        return DeliveryStatus.FAILED
    Delivery.objects.filter(pk=delivery.pk).update(attempts=delivery.attempts + 1)
    try:
        if subscriber.kind == SubscriberKind.EMAIL:
            unsubscribe_url = delivery.payload.get("meta", {}).get("unsubscribe", "")
            message = EmailMessage(subject=delivery.subject, body=delivery.body,
                                   from_email=settings.DEFAULT_FROM_EMAIL, to=[subscriber.email],
                                   headers={"List-Unsubscribe": f"<{unsubscribe_url}>",
                                            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
            message.send()
        else:
            problem = webhook_target_problem(subscriber.webhook_url)  # again at send time: DNS may have changed
            if problem:
                raise OSError(f"webhook URL refused: {problem}")
            response = httpx.post(subscriber.webhook_url, json=delivery.payload, timeout=10, follow_redirects=False,
                                  headers={"User-Agent": f"{settings.PRODUCT_NAME}-status-webhook"})
            response.raise_for_status()
    except (OSError, httpx.HTTPError) as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:500]
        fields = {"last_error": error}
        if final_attempt:
            fields["status"] = DeliveryStatus.FAILED
        Delivery.objects.filter(pk=delivery.pk).update(**fields)
        if final_attempt:
            return DeliveryStatus.FAILED
        raise DeliveryFailed(error) from exc
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SENT, sent_at=timezone.now(), last_error="")
    return DeliveryStatus.SENT
