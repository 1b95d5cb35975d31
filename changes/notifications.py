"""Change requests' transitions as events on the delivery engine (pmrelease.delivery), so signed webhooks and
chat channels hear about them: ``change.submitted``, ``change.in_review``, ``change.approved``,
``change.rejected``, ``change.reopened``, ``change.scheduled``, ``change.implementing``, ``change.validating``,
``change.closed``, ``change.failed``, ``change.cancelled`` — one per django-fsm transition of ``ChangeRequest``.

Connected in ``ChangesConfig.ready`` to django-fsm's ``post_transition``, after the audit receiver
(pmrelease.signals), so it runs where every transition's audit event is recorded, whichever service (or the
deployment engine, or a flag change's approval) performed it. ``delivery.notify`` writes the rows in a savepoint
of the operation's transaction and hands them to the worker after commit: it never raises and never touches the
network, so a failing or slow endpoint cannot block or roll back a transition, and a transition rolled back sends
nothing.
"""
import logging

from django.conf import settings
from django.db import DatabaseError, transaction

from pmrelease import audit, delivery
from pmrelease.models import AuditEvent

from .models import ChangeRequest
from .policy import effective_risk

log = logging.getLogger(__name__)

# transition name -> (event, what the title says, severity)
EVENTS = {
    "submit": ("change.submitted", "submitted", "info"),
    "review": ("change.in_review", "in technical review", "info"),
    "approve": ("change.approved", "approved", "success"),
    "reject": ("change.rejected", "rejected (back to draft)", "warning"),
    "reopen": ("change.reopened", "back in review (what was approved changed)", "warning"),
    "schedule": ("change.scheduled", "scheduled", "info"),
    "implement": ("change.implementing", "being implemented", "info"),
    "validate": ("change.validating", "implemented, being validated", "info"),
    "close": ("change.closed", "closed", "success"),
    "fail": ("change.failed", "failed", "failure"),
    "cancel": ("change.cancelled", "cancelled", "warning"),
}


def _link(pk):
    return f"{settings.PORTAL_URL}/admin/changes/changerequest/{pk}/change/"


def _api_link(pk):
    return f"{settings.PORTAL_URL.rstrip('/')}/api/v1/changes/{pk}/"


def change_data(change, *, transition, source, target, by, reason, audit_event, environments):
    """The documented ``data`` of a change event (schema ``WebhookChangeData``)."""
    return {
        "change": change.pk, "number": f"CHG-{change.pk}", "title": change.title, "type": change.type,
        "class": change.change_class, "priority": change.priority, "risk": effective_risk(change),
        "transition": transition, "status_before": source, "status": target, "actor": audit.actor_name(by),
        "reason": reason or "", "environments": environments,
        "planned_start": change.planned_start.isoformat() if change.planned_start else None,
        "close_code": change.close_code or None, "approval_round": change.approval_round,
        "audit_event": audit_event, "link": _link(change.pk), "api_link": _api_link(change.pk),
    }


def on_transition(sender, instance, name, source, target, **kwargs):
    """One event per transition, to the channels subscribed to it in any of the change's environments (or in
    all environments). Never raises: a problem here is logged, and the transition goes on."""
    if sender is not ChangeRequest or name not in EVENTS:
        return
    try:
        with transaction.atomic():  # a savepoint: a database error here never breaks the transition's transaction
            _notify(instance, name, source, target, kwargs.get("method_kwargs") or {})
    except (DatabaseError, ValueError, TypeError):
        log.exception("the %s event of change %s could not be recorded", EVENTS[name][0], instance.pk)


def _notify(change, name, source, target, method_kwargs):
    event, what, severity = EVENTS[name]
    by, reason = method_kwargs.get("by"), method_kwargs.get("reason") or ""
    if name == "close" and change.close_code == "unsuccessful":
        severity = "failure"
    names = list(change.environments.order_by("name").values_list("name", flat=True)) or [""]
    channels = {c.pk: c for env in names for c in delivery.subscribed_channels(event, env)}
    if not channels:
        return
    # the audit row the trail just recorded for this transition (pmrelease.signals runs first): it makes the
    # delivery id unique per occurrence (a change may be submitted again after a rejection) and stable
    audit_event = (AuditEvent.objects.filter(object_type=ChangeRequest._meta.label_lower, object_id=str(change.pk),
                                             action=f"{ChangeRequest._meta.model_name}.{name}")
                   .order_by("-id").values_list("id", flat=True).first())
    data = change_data(change, transition=name, source=source, target=target, by=by, reason=reason,
                       audit_event=audit_event, environments=[n for n in names if n])
    envs = ", ".join(n for n in names if n) or "no environment"
    delivery.notify(
        event=event, environment=names[0] if len(names) == 1 else "", severity=severity,
        key=f"change-{change.pk}-{name}-{audit_event or change.approval_round}", channels=list(channels.values()),
        subscribed=False,
        title=f"[{settings.PRODUCT_NAME}] Change CHG-{change.pk} {what}: {change.title}"[:250],
        body=f"Change CHG-{change.pk} — {change.title} ({change.change_class}, {change.type}, risk "
             f"{data['risk']}; {envs}) {what} by {data['actor']} ({source} → {target})"
             + (f": {reason}" if reason else ".") + f"\n{_link(change.pk)}",
        data=data)
