"""Incidents (drafts, the public FSM and its updates), the per-environment incident policy, and the deployment
engine's entry point: ``incident_for_deployment`` and the ``on_deployment_finished`` receiver."""
import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from pmrelease import audit, delivery, errors
from pmrelease.services import model_create, model_update

from . import status as st
from . import texts
from .access import can_operate, require_operator
from .components import apply_status, parse_id, resting_status
from .models import (
    UNRESOLVED,
    AffectedComponent,
    Component,
    Impact,
    Incident,
    IncidentPolicy,
    IncidentStatus,
    IncidentUpdate,
    Policy,
)
from .publishing import publish_later
from .subscribers import notify_later


def _lock_incident(incident):
    return Incident.objects.select_for_update().get(pk=incident.pk)


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
            target = st.worst([status, resting_status(component, excluding_incident=incident)])
            change = apply_status(component, target, incident=incident)
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
    require_operator(by)
    texts.require(name=name, body=body)
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
            _notify_team(incident)
            publish_later()
    return incident


def _notify_team(incident):
    """The team's channels subscribed to incident.published (pmrelease.delivery; the public's subscribers hear
    about it through the status page's own notifications)."""
    environment = incident.environment.name if incident.environment_id else ""
    delivery.notify(
        event="incident.published", environment=environment, key=f"incident-{incident.pk}-published",
        severity="failure" if incident.impact in ("major", "critical") else "warning",
        title=f"[{settings.PRODUCT_NAME}] Incident published: {incident.name} ({incident.impact})",
        body=f"Incident #{incident.pk} '{incident.name}' ({incident.impact} impact) is on the status page."
             f"\n{settings.PORTAL_URL}/admin/monitoring/incident/{incident.pk}/change/",
        data={"incident": incident.pk, "name": incident.name, "impact": incident.impact,
              "environment": environment})


def incident_publish(*, incident, by):
    """Publish a draft: its components take their statuses and subscribers hear about it."""
    require_operator(by)
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
        _notify_team(locked)
        publish_later()
    return locked


INCIDENT_TRANSITIONS = {"identify": IncidentStatus.IDENTIFIED, "monitor": IncidentStatus.MONITORING,
                        "resolve": IncidentStatus.RESOLVED, "publish_postmortem": IncidentStatus.POSTMORTEM}


def incident_transition(*, incident, name, by, body, component_statuses=None):
    """Move an incident along its FSM; every transition adds a public update with its component changes.

    On resolve, components not given a status return to their resting status (operational unless another
    open incident or an active maintenance holds them).
    """
    require_operator(by)
    if name not in INCIDENT_TRANSITIONS:
        raise errors.ValidationFailed(f"unknown transition '{name}'; one of {', '.join(INCIDENT_TRANSITIONS)}")
    if not (body or "").strip():
        raise errors.ValidationFailed("an update needs a message", field_errors={"body": ["This field is required."]})
    texts.require(body=body)
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
                target = statuses.pop(component, None) or resting_status(component, excluding_incident=locked)
                if locked.is_published:
                    change = apply_status(component, st.worst([target, resting_status(
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
    require_operator(by)
    if not (body or "").strip():
        raise errors.ValidationFailed("an update needs a message", field_errors={"body": ["This field is required."]})
    texts.require(body=body)
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
    require_operator(by)
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
    require_operator(by)
    if policy not in Policy.values:
        raise errors.ValidationFailed("invalid policy", field_errors={"policy": [f"must be one of {', '.join(Policy.values)}"]})
    with transaction.atomic():
        row = IncidentPolicy.objects.select_for_update().filter(environment=environment).first()
        if row is None:
            return model_create(model=IncidentPolicy, data={"policy": policy}, fields=["policy"], by=by,
                                action="incidentpolicy.set", extra={"environment": environment})
        row, _ = model_update(instance=row, data={"policy": policy}, fields=["policy"], by=by,
                              action="incidentpolicy.set")
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
