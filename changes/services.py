"""Operations on change requests: create (normal, from a template, emergency, for a flag), edit (withdrawing
approvals), the seven steps, emergency reviews, windows and freezes, and the production gate deployments pass.

Each service checks permission, opens a transaction, runs the transition, saves and audits. ``by=None`` is the
system (a rollback recording itself, the deployment engine moving a change along).
"""
import datetime as dt

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from flags import services as flags_services
from pmrelease import approvals, audit, delivery, errors, leaks
from pmrelease.approvals import Decision
from pmrelease.roles import Capability, Role, user_roles
from pmrelease.services import model_create, model_delete, model_update
from releases import access
from releases.models import Environment

from . import risk, schedule
from .models import (
    BEFORE_IMPLEMENTING,
    OPEN,
    ApprovalRule,
    ChangeApproval,
    ChangeClass,
    ChangeFreeze,
    ChangeLink,
    ChangeRequest,
    ChangeStatus,
    ChangeTemplate,
    ChangeType,
    ChangeWindow,
    CloseCode,
    EnvironmentChangePolicy,
)
from .policy import POLICY, effective_risk

CHANGE_FIELDS = ["title", "description", "type", "priority", "impact", "likelihood", "environments",
                 "planned_start", "duration", "maintenance", "implementation_plan", "rollback_plan", "testing_plan",
                 "implementer", "approvers"]
# What an approval covers: editing any of it withdraws the round's votes.
APPROVED_CONTENT = ["description", "type", "impact", "likelihood", "environments", "planned_start", "duration",
                    "maintenance", "implementation_plan", "rollback_plan", "testing_plan", "implementer", "approvers"]
TEXT = {"submit": "", "approve": "comment", "reject": "reason", "schedule": "", "implement": "", "validate": "",
        "close": "notes", "fail": "reason", "cancel": "reason", "review": "", "retro_approve": "comment"}


def _lock(change):
    return ChangeRequest.objects.select_for_update().get(pk=change.pk)


def _require_requester(by, environments):
    """Requesting a change needs read access to every environment it touches."""
    for env in environments:
        if not access.can(by, env, Capability.VIEW):
            raise errors.PermissionDenied(f"{by.username} has no access to {env.name}")


def _assess(change):
    envs = list(change.environments.all())
    level, reasons = risk.assess(impact=change.impact, likelihood=change.likelihood,
                                 production_tiers=sum(1 for e in envs if e.is_production), environments=len(envs))
    if change.risk_override and risk.rank(change.risk_override) > risk.rank(level):
        reasons.append(f"raised to {change.risk_override} by an approver")
    ChangeRequest.objects.filter(pk=change.pk).update(risk=level, risk_reasons=reasons)
    change.risk, change.risk_reasons = level, reasons


def change_snapshot(change):
    data = audit.snapshot(change, fields=[*APPROVED_CONTENT, "title", "priority"])
    data["links"] = sorted(f"{link.content_type.app_label}.{link.content_type.model}:{link.object_id}"
                           for link in change.links.select_related("content_type"))
    data["risk"] = effective_risk(change)
    return data


def _link(change, obj, label=""):
    content_type = ContentType.objects.get_for_model(type(obj))
    ChangeLink.objects.get_or_create(change=change, content_type=content_type, object_id=str(obj.pk),
                                     defaults={"label": label or str(obj)[:200]})


def _check_people(data, requester):
    """The requester cannot be the change's named approver; the implementer cannot approve either."""
    named = list(data.get("approvers") or [])
    clash = [u.get_username() for u in named if requester is not None and u.pk == requester.pk]
    implementer = data.get("implementer")
    clash += [u.get_username() for u in named if implementer is not None and u.pk == implementer.pk]
    if clash:
        raise errors.ValidationFailed("the requester and the implementer cannot be the change's approvers "
                                      "(separation of duties)", field_errors={"approvers": sorted(set(clash))})


def change_create(*, data, by, links=(), change_class=ChangeClass.NORMAL, template=None):
    """A new change request in draft (``links``: the releases, deployments, flag states… it covers)."""
    if change_class not in ChangeClass.values:
        raise errors.ValidationFailed(f"class must be one of {', '.join(ChangeClass.values)}")
    _check_people(data, by if getattr(by, "is_authenticated", False) else None)
    if by is not None:
        _require_requester(by, data.get("environments") or [])
    with transaction.atomic():
        change = model_create(model=ChangeRequest, data=data, fields=CHANGE_FIELDS, by=by, action="change.create",
                              extra={"requested_by": by if getattr(by, "is_authenticated", False) else None,
                                     "change_class": change_class, "template": template},
                              clean_exclude=["status"])
        if not change.environments.exists():
            raise errors.ValidationFailed("a change touches at least one environment",
                                          field_errors={"environments": ["This field is required."]})
        for obj in links:
            _link(change, obj)
        _assess(change)
    return change


def change_create_from_template(*, template, data, by, links=()):
    """A standard change: from an approved, active template; pre-authorised, it skips review when submitted."""
    if not (template.active and template.is_approved):
        raise errors.ValidationFailed(f"template {template} is not approved and active: it cannot make standard "
                                      "changes")
    allowed = set(template.environments.values_list("pk", flat=True))
    envs = data.get("environments") or []
    if allowed and any(env.pk not in allowed for env in envs):
        raise errors.ValidationFailed(f"template {template} is for {', '.join(e.name for e in template.environments.all())} "
                                      "only", field_errors={"environments": ["outside the template's environments"]})
    fixed = _template_content(template)
    differs = sorted(name for name in fixed if data.get(name) not in (None, "", fixed[name]))
    if differs:
        raise errors.ValidationFailed(f"a standard change follows its pre-approved template {template}: make a "
                                      "normal change to do it differently",
                                      field_errors={name: ["set by the template"] for name in differs})
    data = {"description": template.description, **data, **fixed}
    change = change_create(data=data, by=by, links=links, change_class=ChangeClass.STANDARD, template=template)
    if risk.rank(change.risk) > risk.rank(template.max_risk):
        raise errors.ValidationFailed(f"this change is {change.risk} risk; template {template} covers up to "
                                      f"{template.max_risk}: make it a normal change")
    return change


def _template_content(template):
    """What a standard change takes from its template and may not change (it is what was pre-approved)."""
    return {"type": template.type, "implementation_plan": template.implementation_plan,
            "rollback_plan": template.rollback_plan, "testing_plan": template.testing_plan}


def change_update(*, change, data, by, links=None):
    """Edit a change before implementation. Editing what was in review or approved withdraws the round's votes,
    audited with what changed; an approved or scheduled change goes back to review."""
    with transaction.atomic():
        locked = _lock(change)
        if locked.status not in BEFORE_IMPLEMENTING:
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}: only a change not yet implemented can "
                                              "be edited")
        if by is not None and by.pk != locked.requested_by_id and not access.is_approver(by):
            raise errors.PermissionDenied(f"only the requester or a release manager may edit {locked}")
        if by is not None:
            _require_requester(by, [*locked.environments.all(), *(data.get("environments") or [])])
        _check_people({"approvers": data.get("approvers", locked.approvers.all()),
                       "implementer": data.get("implementer", locked.implementer)}, locked.requested_by)
        if locked.change_class == ChangeClass.FLAG_CHANGE:
            fixed_fields = sorted(set(data) - {"title", "description"})
            if fixed_fields:
                raise errors.ValidationFailed(f"{locked} is a proposed flag change: what it changes is the proposal "
                                              "(withdraw it and propose again)",
                                              field_errors={name: ["set by the flag change"] for name in fixed_fields})
        if locked.template_id is not None:
            fixed = _template_content(locked.template)
            differs = sorted(name for name in fixed if name in data and data[name] != fixed[name])
            if differs:
                raise errors.ValidationFailed(f"{locked} follows its pre-approved template: its plans and type stay",
                                              field_errors={name: ["set by the template"] for name in differs})
        before = change_snapshot(locked)
        model_update(instance=locked, data=data, fields=CHANGE_FIELDS, by=by, action="change.update",
                     clean_exclude=["status"])
        if links is not None:
            locked.links.all().delete()
            for obj in links:
                _link(locked, obj)
        _assess(locked)
        b, a = audit.diff(before, change_snapshot(locked))
        changed = [name for name in a if name in (*APPROVED_CONTENT, "links", "risk")]
        if changed and locked.status != ChangeStatus.DRAFT:
            approvals.withdraw(locked, votes=locked.approvals, by=by, changed=changed)
            if can_proceed(locked.reopen):
                locked.reopen(by=by, reason="what was approved changed: " + ", ".join(changed))
                locked.save()
    change.refresh_from_db()
    return change


def change_link(*, change, obj, by, label=""):
    """Cover one more thing (a release, a deployment…): an edit of what is approved."""
    with transaction.atomic():
        locked = _lock(change)
        if locked.status not in OPEN:
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}")
        before = change_snapshot(locked)
        _link(locked, obj, label)
        b, a = audit.diff(before, change_snapshot(locked))
        if a:
            audit.record(action="change.link", obj=locked, by=by, before=b, after=a)
            if locked.status in (ChangeStatus.IN_REVIEW, ChangeStatus.APPROVED, ChangeStatus.SCHEDULED):
                approvals.withdraw(locked, votes=locked.approvals, by=by, changed=["links"])
                if can_proceed(locked.reopen):
                    locked.reopen(by=by, reason="what was approved changed: links")
                    locked.save()
    return locked


# --- the workflow ---------------------------------------------------------------------------------------------
def change_submit(*, change, by):
    """Draft → submitted. A standard change from an approved template is approved at once (pre-authorised);
    an emergency change is ready for its one operations approver."""
    with transaction.atomic():
        locked = _lock(change)
        if not can_proceed(locked.submit):
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}: only a draft can be submitted")
        if by is not None and locked.requested_by_id not in (None, by.pk) and not access.is_approver(by):
            raise errors.PermissionDenied(f"only the requester may submit {locked}")
        missing = [name for name in ("implementation_plan", "rollback_plan", "testing_plan")
                   if not getattr(locked, name).strip()]
        if missing and locked.change_class != ChangeClass.EMERGENCY:
            raise errors.ValidationFailed("a change needs its plans before it is submitted",
                                          field_errors={name: ["This field is required."] for name in missing})
        locked.submit(by=by, reason="submitted")
        locked.save()
        if locked.change_class == ChangeClass.STANDARD:
            locked.approve(by=None, reason=f"standard change from the pre-approved template {locked.template}")
            locked.save()
        else:
            _notify_approval_requested(locked)
    return locked


def _notify_approval_requested(change):
    """The channels subscribed to approval.requested in the change's environments (pmrelease.delivery)."""
    names = list(change.environments.values_list("name", flat=True)) or [""]
    channels = {c.pk: c for name in names for c in delivery.subscribed_channels("approval.requested", name)}
    link = f"{settings.PORTAL_URL}/admin/changes/changerequest/{change.pk}/change/"
    delivery.notify(
        event="approval.requested", environment=names[0] if len(names) == 1 else "", channels=list(channels.values()),
        subscribed=False, key=f"change-{change.pk}-round-{change.approval_round}",
        title=f"[{settings.PRODUCT_NAME}] Change {change} awaits approval ({change.change_class})",
        body=f"{change} ({change.change_class}, {', '.join(n for n in names if n) or 'no environment'}) awaits "
             f"approval.\n{link}",
        data={"change": change.pk, "class": change.change_class, "environments": names, "link": link})


def _vote(change, by, decision, comment):
    leaks.check({"comment": comment}, by=by, obj=change)
    ok, why = POLICY.eligibility(change, by)
    if not ok:
        audit.record(action="change.approval_refused", obj=change, by=by, reason=why,
                     after={"decision": decision, "round": change.approval_round})
        return why
    ChangeApproval.objects.create(change=change, approver=by, round=change.approval_round, decision=decision,
                                  comment=comment)
    return ""


def change_approve(*, change, by, comment=""):
    """Record ``by``'s approval; the change is approved when every role the policy names has approved.
    A refused attempt (the requester or implementer approving their own change) is refused and recorded."""
    with transaction.atomic():
        locked = _lock(change)
        if locked.status not in (ChangeStatus.SUBMITTED, ChangeStatus.IN_REVIEW):
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}: there is nothing to approve")
        access.require_step_up(by, list(locked.environments.all()), "approve a change")
        why = _vote(locked, by, Decision.APPROVED, comment)
        if why:
            refusal = errors.PermissionDenied(why)
        else:
            refusal = None
            if locked.status == ChangeStatus.SUBMITTED:
                locked.review(by=by, reason="technical review begun")
                locked.save()
            result = POLICY.tally(locked)
            audit.record(action="change.approval", obj=locked, by=by, reason=comment,
                         after={"decision": "approved", "round": locked.approval_round, "approvals": result.approvals,
                                "missing": list(result.missing)})
            if result.satisfied:
                locked.approve(by=by, reason="every role the policy names approved")
                locked.save()
                if locked.change_class == ChangeClass.FLAG_CHANGE:
                    _apply_flag_change(locked, by, comment)
    if refusal is not None:
        raise refusal  # after the transaction: the refused attempt stays recorded
    change.refresh_from_db()
    return change


def change_reject(*, change, by, reason):
    if not (reason or "").strip():
        raise errors.ValidationFailed("a rejection needs a reason", field_errors={"reason": ["This field is required."]})
    with transaction.atomic():
        locked = _lock(change)
        if not can_proceed(locked.reject):
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}: it cannot be rejected now")
        ok, why = POLICY.eligibility(locked, by, for_vote=False)
        if not ok:
            raise errors.PermissionDenied(why)
        ChangeApproval.objects.update_or_create(change=locked, approver=by, round=locked.approval_round,
                                                defaults={"decision": Decision.REJECTED, "comment": reason})
        if locked.change_class == ChangeClass.FLAG_CHANGE:  # a proposal is not reworked: it ends here
            locked.cancel(by=by, reason=f"rejected: {reason}")
            locked.save()
            for flag_change in _flag_changes(locked):
                flags_services.change_request_reject(change=flag_change, by=by, comment=reason)
            return locked
        locked.reject(by=by, reason=reason)
        locked.save()
    return locked


def windows_and_freezes(environments):
    """The windows and freezes that apply to the environments, as pure values."""
    env_ids = [e.pk for e in environments]
    windows = [schedule.Window(name=w.name, days=tuple(w.days), start=w.start_time, end=w.end_time, tz=w.timezone)
               for w in ChangeWindow.objects.filter(environment_id__in=env_ids, active=True)]
    freezes = []
    for f in ChangeFreeze.objects.filter(active=True).prefetch_related("environments"):
        touched = {e.pk for e in f.environments.all()}
        if touched and not touched & set(env_ids):
            continue
        if not touched and not any(requires_change(e) for e in environments):
            continue
        freezes.append(schedule.Freeze(reason=f.reason, start=f.starts_at, end=f.ends_at, rule=f.rule,
                                       first=f.rule_start, minutes=f.duration_minutes, tz=f.timezone))
    return windows, freezes


def schedule_problems(change, start=None):
    """(refusals, warnings) for implementing ``change`` at ``start`` (its planned start by default)."""
    start = start or change.planned_start
    if start is None:
        return ["the change has no planned start"], []
    end = start + dt.timedelta(minutes=change.duration)
    envs = list(change.environments.all())
    per_env = []
    for env in envs:
        windows, freezes = windows_and_freezes([env])
        refusals, _ = schedule.check(start=start, end=end, windows=windows, freezes=freezes)
        per_env += [f"{env.name}: {r}" for r in refusals]
    if change.is_emergency:
        return [], [f"emergency change: {r}" for r in per_env]
    return per_env, []


def change_schedule(*, change, by, planned_start=None):
    """Approved → scheduled: a deployment window is assigned. Outside every window or inside a freeze it is
    refused, naming them (an emergency change needs no scheduling and gets warnings only)."""
    with transaction.atomic():
        locked = _lock(change)
        if not can_proceed(locked.schedule):
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}: only an approved change is scheduled")
        _require_operator(by, locked)
        if planned_start is not None:
            ChangeRequest.objects.filter(pk=locked.pk).update(planned_start=planned_start)
            locked.planned_start = planned_start
        refusals, warnings = schedule_problems(locked)
        if refusals:
            raise errors.TransitionNotAllowed(f"{locked} cannot be scheduled then", reasons=refusals)
        locked.schedule(by=by, reason="; ".join(warnings) or f"scheduled for {locked.planned_start:%Y-%m-%d %H:%M} UTC")
        locked.save()
        if locked.maintenance:
            _announce_maintenance(locked, by)
    return locked


def _announce_maintenance(change, by):
    """A change flagged as maintenance is announced on the status page for its window, on the components of its
    environments (moved with the change when it is scheduled again while the announcement is still scheduled)."""
    from monitoring.models import Component, Maintenance
    from monitoring.statuspage import maintenance as status_maintenance

    content_type = ContentType.objects.get_for_model(Maintenance)
    linked = [int(i) for i in change.links.filter(content_type=content_type).values_list("object_id", flat=True)]
    existing = Maintenance.objects.filter(pk__in=linked, status="scheduled").first()
    window = {"scheduled_for": change.planned_start, "scheduled_until": change.planned_end}
    if existing is not None:
        status_maintenance.maintenance_update(maintenance=existing, data=window, by=by)
        return existing
    components = list(Component.objects.filter(environments__in=change.environments.all()).distinct())
    announced = status_maintenance.maintenance_create(by=by, data={
        "name": change.title, "components": components, **window,
        "body": change.description.strip() or f"Planned maintenance: {change.title}."})
    _link(change, announced, label=f"status page maintenance: {announced.name}"[:200])
    return announced


def _require_operator(by, change):
    """Scheduling and implementing need full access to every environment the change touches."""
    if by is None:
        return
    access.require(by, list(change.environments.all()), Capability.DEPLOY)


def change_implement(*, change, by, now=None, deployment=None, implementer=None):
    """Approved or scheduled → implementing, now: a normal change inside its window and no freeze; an
    emergency change at once, even inside a freeze (with the warning recorded)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(change)
        if not can_proceed(locked.implement):
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}: it is not approved")
        _require_operator(by, locked)
        refusals, warnings = schedule_problems(locked, start=now)
        if refusals:
            raise errors.TransitionNotAllowed(f"{locked} may not be implemented now", reasons=refusals)
        implementer = implementer or (by if getattr(by, "is_authenticated", False) else None)
        if locked.implementer_id is None and implementer is not None:
            ChangeRequest.objects.filter(pk=locked.pk).update(implementer=implementer)
            locked.implementer = implementer
        locked.implement(by=by, reason="; ".join(warnings) or "implementation started")
        locked.save()
        if deployment is not None:
            _link(locked, deployment)
    return locked


def change_transition(*, change, name, by, text=""):
    leaks.check({"reason": text}, by=by, obj=change)
    """Run the named step (the API's and admin's single entry point)."""
    handlers = {
        "submit": lambda: change_submit(change=change, by=by),
        "approve": lambda: change_approve(change=change, by=by, comment=text),
        "reject": lambda: change_reject(change=change, by=by, reason=text),
        "schedule": lambda: change_schedule(change=change, by=by),
        "implement": lambda: change_implement(change=change, by=by),
        "validate": lambda: change_validate(change=change, by=by),
        "close": lambda: change_close(change=change, by=by, notes=text),
        "fail": lambda: change_fail(change=change, by=by, reason=text),
        "cancel": lambda: change_cancel(change=change, by=by, reason=text),
        "retro_approve": lambda: change_retro_approve(change=change, by=by, comment=text),
    }
    if name not in handlers:
        raise errors.ValidationFailed(f"unknown transition '{name}' ({', '.join(handlers)})")
    return handlers[name]()


def change_validate(*, change, by):
    with transaction.atomic():
        locked = _lock(change)
        if not can_proceed(locked.validate):
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}: only an implementing change is validated")
        _require_operator(by, locked)
        locked.validate(by=by, reason="post-deployment validation")
        locked.save()
    return locked


def change_close(*, change, by, close_code=CloseCode.SUCCESSFUL, notes=""):
    """Validating → closed with a close code. An emergency change needs its review and retrospective
    approval first."""
    if close_code not in CloseCode.values:
        raise errors.ValidationFailed(f"close code must be one of {', '.join(CloseCode.values)}")
    with transaction.atomic():
        locked = _lock(change)
        if not can_proceed(locked.close):
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}: only a validating change is closed")
        _require_operator(by, locked)
        if locked.needs_review:
            raise errors.TransitionNotAllowed(
                f"{locked} is an emergency change: it closes after its post-implementation review and a "
                "retrospective approval", reasons=[r for r, done in (
                    ("post-implementation review (root cause, prevention)", locked.pir_at),
                    ("retrospective approval by operations", locked.retro_approved_at)) if not done])
        locked.close(by=by, reason=notes or close_code, close_code=close_code, notes=notes)
        locked.save()
    return locked


def change_fail(*, change, by, reason):
    with transaction.atomic():
        locked = _lock(change)
        if not can_proceed(locked.fail):
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}")
        _require_operator(by, locked)
        locked.fail(by=by, reason=reason, notes=reason)
        locked.save()
    return locked


def change_cancel(*, change, by, reason):
    if not (reason or "").strip():
        raise errors.ValidationFailed("cancelling needs a reason", field_errors={"reason": ["This field is required."]})
    with transaction.atomic():
        locked = _lock(change)
        if not can_proceed(locked.cancel):
            raise errors.TransitionNotAllowed(f"{locked} is {locked.status}: only a change not yet implemented can be "
                                              "cancelled")
        if by is not None and by.pk != locked.requested_by_id and not access.is_approver(by):
            raise errors.PermissionDenied(f"only the requester or a release manager may cancel {locked}")
        locked.cancel(by=by, reason=reason)
        locked.save()
        for flag_change in _flag_changes(locked):  # withdrawn by its requester (or rejected by a manager)
            flags_services.change_request_reject(change=flag_change, by=by, comment=reason)
        _withdraw_maintenance(locked, by, reason)
    return locked


def _withdraw_maintenance(change, by, reason):
    """The status page maintenance a cancelled change announced (still scheduled) is cancelled with it: it
    leaves the public page and its subscribers are told."""
    from monitoring.models import Maintenance
    from monitoring.statuspage import maintenance as status_maintenance

    content_type = ContentType.objects.get_for_model(Maintenance)
    linked = [int(i) for i in change.links.filter(content_type=content_type).values_list("object_id", flat=True)]
    for announced in Maintenance.objects.filter(pk__in=linked, status="scheduled"):
        status_maintenance.maintenance_withdraw(
            maintenance=announced, by=by, body=f"This scheduled maintenance has been cancelled: {change.title} "
                                               "will not take place as planned.")


def change_raise_risk(*, change, by, level, reason):
    """An approver raises the risk (never lowers it): the policy may then ask for more approvals."""
    if level not in risk.LEVELS:
        raise errors.ValidationFailed(f"risk must be one of {', '.join(risk.LEVELS)}")
    with transaction.atomic():
        locked = _lock(change)
        ok, why = POLICY.eligibility(locked, by, for_vote=False)
        if not ok:
            raise errors.PermissionDenied(why)
        if risk.rank(level) <= risk.rank(effective_risk(locked)):
            raise errors.ValidationFailed(f"the risk is {effective_risk(locked)}: it may be raised, never lowered")
        before = effective_risk(locked)
        ChangeRequest.objects.filter(pk=locked.pk).update(risk_override=level)
        locked.risk_override = level
        _assess(locked)
        audit.record(action="change.risk_raised", obj=locked, by=by, reason=reason,
                     before={"risk": before}, after={"risk": level})
    return locked


# --- emergency changes: review afterwards -------------------------------------------------------------------
def change_record_review(*, change, by, root_cause, prevention):
    """The post-implementation review of an emergency change, by someone other than its implementer."""
    problems = {k: ["This field is required."] for k, v in (("root_cause", root_cause), ("prevention", prevention))
                if not (v or "").strip()}
    if problems:
        raise errors.ValidationFailed("a review needs the root cause and the prevention", field_errors=problems)
    with transaction.atomic():
        locked = _lock(change)
        if not locked.is_emergency or locked.status not in (ChangeStatus.IMPLEMENTING, ChangeStatus.VALIDATING,
                                                           ChangeStatus.FAILED):
            raise errors.TransitionNotAllowed("only an implemented emergency change takes a post-implementation review")
        if by.pk == locked.implementer_id:
            raise errors.PermissionDenied("the implementer cannot review their own emergency change")
        access.require(by, list(locked.environments.all()), Capability.VIEW)
        ChangeRequest.objects.filter(pk=locked.pk).update(pir_root_cause=root_cause, pir_prevention=prevention,
                                                          pir_reviewer=by, pir_at=timezone.now())
        audit.record(action="change.review", obj=locked, by=by,
                     after={"root_cause": root_cause, "prevention": prevention})
    change.refresh_from_db()
    return change


def change_retro_approve(*, change, by, comment=""):
    """The retrospective approval of a reviewed emergency change (operations; not its requester, implementer or
    reviewer)."""
    with transaction.atomic():
        locked = _lock(change)
        if not locked.is_emergency or not locked.pir_at:
            raise errors.TransitionNotAllowed("a retrospective approval follows the post-implementation review")
        if by.pk in (locked.requested_by_id, locked.implementer_id, locked.pir_reviewer_id):
            raise errors.PermissionDenied("the requester, implementer or reviewer cannot approve it retrospectively")
        if not (by.is_superuser or Role.OPERATIONS.value in user_roles(by)):
            raise errors.PermissionDenied("a retrospective approval is given by operations")
        ChangeRequest.objects.filter(pk=locked.pk).update(retro_approved_by=by, retro_approved_at=timezone.now())
        audit.record(action="change.retro_approval", obj=locked, by=by, reason=comment)
    change.refresh_from_db()
    return change


IMPLEMENTED = [ChangeStatus.IMPLEMENTING, ChangeStatus.VALIDATING, ChangeStatus.FAILED]


def remind_open_reviews(now=None):
    """Beat: e-mail operations about emergency changes still waiting for their review (once a day each)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.mail import send_mail

    now = now or timezone.now()
    due = list(ChangeRequest.objects.filter(change_class=ChangeClass.EMERGENCY, status__in=IMPLEMENTED,
                                            retro_approved_at__isnull=True).exclude(
        pir_reminded_at__gt=now - dt.timedelta(days=1)))
    if not due:
        return 0
    people = list(get_user_model().objects.filter(groups__name=Role.OPERATIONS.value, is_active=True)
                  .exclude(email="").values_list("email", flat=True).distinct())
    if people:
        send_mail(subject=f"[{settings.PRODUCT_NAME}] {len(due)} emergency change(s) await their review",
                  message="\n".join(f"- {c}: {c.get_status_display().lower()}, "
                                    f"{'reviewed, awaiting retrospective approval' if c.pir_at else 'not reviewed'} — "
                                    f"{settings.PORTAL_URL}/admin/changes/changerequest/{c.pk}/change/" for c in due),
                  from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=people)
    ChangeRequest.objects.filter(pk__in=[c.pk for c in due]).update(pir_reminded_at=now)
    return len(due)


# --- flag changes: a second person's approval through a change request --------------------------------------
FLAG_PLANS = {
    "implementation_plan": "The proposed configuration (enabled, strategies, variants) is applied when approved.",
    "rollback_plan": "Restore the configuration it was proposed against (the flag's page, or the audit history).",
    "testing_plan": "Evaluate the flag for a test context on its page; watch the flag's usage counters.",
}


def _flag_changes(change):
    from flags.models import FlagChangeRequest

    content_type = ContentType.objects.get_for_model(FlagChangeRequest)
    ids = [int(i) for i in change.links.filter(content_type=content_type).values_list("object_id", flat=True)]
    return list(FlagChangeRequest.objects.filter(pk__in=ids, status="pending"))


def _flag_summary(base, proposed):
    parts = []
    if base.get("enabled") != proposed.get("enabled"):
        parts.append("enable" if proposed.get("enabled") else "disable")
    for key in ("rollout", "strategies", "variants"):
        if base.get(key) != proposed.get(key):
            parts.append(f"{key} changed")
    return ", ".join(parts) or "configuration changed"


def on_flag_change_proposed(sender, *, change, **kwargs):
    """A person proposed a flag change where a second person must approve: it becomes a change request of the
    ``flag_change`` class, submitted at once (inside the proposing transaction)."""
    state = change.state
    summary = _flag_summary(change.base or {}, change.proposed or {})
    requester = change.requested_by
    request = change_create(by=requester, links=[change], change_class=ChangeClass.FLAG_CHANGE, data={
        "title": f"Flag {state.flag.key} in {state.environment.name}: {summary}"[:200],
        "description": (change.reason or "").strip()[:5000], "environments": [state.environment],
        "type": ChangeType.ENHANCEMENT, "impact": "low", "likelihood": "low",
        "planned_start": timezone.now(), "duration": 5, **FLAG_PLANS})
    change_submit(change=request, by=requester)
    return request


def _apply_flag_change(change, by, comment):
    """The flag change request's approval applies the flag change, and the change is done: implementing,
    validating, closed (refused, and the approval with it, when the flag changed since it was proposed)."""
    for flag_change in _flag_changes(change):
        flags_services.change_request_apply(change=flag_change, by=by, comment=comment)
    if change.implementer_id is None and getattr(by, "is_authenticated", False):
        change.implementer = by  # who applied it (saved with the transitions)
    for step in ("implement", "validate"):
        getattr(change, step)(by=by, reason="the flag change was applied on approval")
        change.save()
    change.close(by=by, reason="applied", close_code=CloseCode.SUCCESSFUL, notes="applied on approval")
    change.save()


def flag_change_request(flag_change):
    """The change request deciding ``flag_change`` (None for one proposed before change requests decided them)."""
    content_type = ContentType.objects.get_for_model(type(flag_change))
    return (ChangeRequest.objects.filter(change_class=ChangeClass.FLAG_CHANGE, links__content_type=content_type,
                                         links__object_id=str(flag_change.pk)).order_by("-id").first())


def decide_flag_change(*, change, by, approve, comment=""):
    """A decision taken from the flags API: on the change request that decides the flag change."""
    request = flag_change_request(change)
    if request is None:
        raise errors.TransitionNotAllowed(f"{change} has no change request to decide it on")
    if approve:
        change_approve(change=request, by=by, comment=comment)
    else:
        change_reject(change=request, by=by, reason=comment or "rejected")
    change.refresh_from_db()
    return change


def flag_change_reference(*, change):
    from django.urls import reverse

    request = flag_change_request(change)
    if request is None:
        return None
    return str(request), reverse("admin:changes_changerequest_change", args=[request.pk])


def flag_change_references(*, changes):
    """``{flag change id: (label, admin URL)}`` of the change requests deciding ``changes`` (the newest where a
    flag change has several; none for one proposed before change requests decided them), in one query."""
    from django.urls import reverse

    changes = list(changes)
    if not changes:
        return {}
    content_type = ContentType.objects.get_for_model(type(changes[0]))
    links = (ChangeLink.objects.filter(content_type=content_type, object_id__in=[str(c.pk) for c in changes],
                                       change__change_class=ChangeClass.FLAG_CHANGE)
             .select_related("change").order_by("change_id"))
    return {int(link.object_id): (str(link.change), reverse("admin:changes_changerequest_change",
                                                            args=[link.change_id])) for link in links}


# --- production gating ----------------------------------------------------------------------------------------
def requires_change(environment):
    policy = EnvironmentChangePolicy.objects.filter(environment=environment).first()
    return policy.requires_change if policy is not None else environment.is_production


def covering_changes(release, environment):
    release_type = ContentType.objects.get_for_model(type(release))
    return (ChangeRequest.objects.filter(links__content_type=release_type, links__object_id=str(release.pk),
                                         environments=environment)
            .filter(status__in=[ChangeStatus.APPROVED, ChangeStatus.SCHEDULED, ChangeStatus.IMPLEMENTING])
            .distinct().order_by("-id"))


def deployment_gate(*, release, environment, now=None):
    """(refusals, change): may ``release`` deploy to ``environment`` now? Where the environment requires a
    change: an approved or scheduled change covering the release whose window is now (and no freeze), or an
    implementing emergency change. Nothing is required elsewhere."""
    if not requires_change(environment):
        return [], None
    now = now or timezone.now()
    candidates = list(covering_changes(release, environment))
    if not candidates:
        return [f"{environment.name} requires an approved change covering release {release.version}: create one "
                "(or an emergency change) and link the release"], None
    reasons = []
    for change in candidates:
        if change.is_emergency and change.status in (ChangeStatus.APPROVED, ChangeStatus.IMPLEMENTING):
            return [], change
        if change.status == ChangeStatus.IMPLEMENTING:
            return [], change
        refusals, _ = schedule_problems(change, start=now)
        if not refusals:
            return [], change
        reasons += [f"{change}: {r}" for r in refusals]
    return reasons, None


def config_change_gate(*, environment, now=None):
    """(refusals, change): may ``environment``'s configuration change now? Where the environment requires a
    change: an approved or scheduled change of that environment linking it (its configuration) whose window is
    now and no freeze, or an implementing or emergency one. Nothing is required elsewhere."""
    if not requires_change(environment):
        return [], None
    now = now or timezone.now()
    env_type = ContentType.objects.get_for_model(Environment)
    candidates = list(ChangeRequest.objects.filter(
        links__content_type=env_type, links__object_id=str(environment.pk), environments=environment,
        status__in=[ChangeStatus.APPROVED, ChangeStatus.SCHEDULED, ChangeStatus.IMPLEMENTING]).distinct().order_by("-id"))
    if not candidates:
        return [f"{environment.name} requires an approved change covering its configuration: create one for "
                f"{environment.name} linking the environment (or an emergency change)"], None
    reasons = []
    for change in candidates:
        if change.status == ChangeStatus.IMPLEMENTING or (change.is_emergency and change.status == ChangeStatus.APPROVED):
            return [], change
        refusals, _ = schedule_problems(change, start=now)
        if not refusals:
            return [], change
        reasons += [f"{change}: {r}" for r in refusals]
    return reasons, None


def config_change_saved(*, change, version, by):
    """A configuration version saved under ``change``: linked to it and on its trail."""
    _link(change, version, label=str(version))
    audit.record(action="change.config_version", obj=change, by=by,
                 after={"environment": version.environment.name, "version": version.number,
                        "changes": len(version.changes)})


def on_deployment_started(*, deployment):
    """The deployment engine started a deployment its gate let through: the covering change is implementing."""
    refusals, change = deployment_gate(release=deployment.release, environment=deployment.environment)
    if change is None:
        return
    if can_proceed(change.implement):
        change_implement(change=change, by=None, deployment=deployment, implementer=deployment.requested_by)
    else:
        _link(change, deployment)


def on_deployment_finished(sender, *, deployment, automatic_rollback, reason, **kwargs):
    """A deployment ended: its implementing change moves to validating (success) or failed. A rollback in an
    environment that requires changes is never blocked: it records itself as an emergency change, which then
    needs its post-implementation review."""
    dep = deployment
    dep_type = ContentType.objects.get_for_model(type(dep))
    changes = list(ChangeRequest.objects.filter(links__content_type=dep_type, links__object_id=str(dep.pk),
                                                status__in=[ChangeStatus.IMPLEMENTING, ChangeStatus.VALIDATING]))
    for change in changes:
        locked = _lock(change)
        if dep.status == "succeeded":
            waiting = _environments_not_deployed(locked, dep_type)
            if locked.status == ChangeStatus.IMPLEMENTING and not waiting:
                locked.validate(by=None, reason=f"deployment #{dep.pk} succeeded; validating (health checks, bake "
                                                "time)")
                locked.save()
        else:  # failed, or rolled back (also after success, in its bake time)
            locked.fail(by=None, reason=f"deployment #{dep.pk} {dep.status}: {reason}", notes=reason)
            locked.save()
    if dep.status == "rolled_back" and requires_change(dep.environment):
        _record_rollback(dep, automatic_rollback, reason)


def _environments_not_deployed(change, dep_type):
    """The change's environments without a succeeded deployment among those it covers (a change for
    production and dr stays implementing until both are deployed)."""
    from releases.models import Deployment

    ids = [int(i) for i in change.links.filter(content_type=dep_type).values_list("object_id", flat=True)]
    done = set(Deployment.objects.filter(pk__in=ids, status="succeeded").values_list("environment_id", flat=True))
    return [e for e in change.environments.all() if e.pk not in done]


def _record_rollback(dep, automatic, reason):
    who = "the deployment engine (automatic)" if automatic else "an operator"
    change = ChangeRequest(
        title=f"Rollback of {dep.release.version} on {dep.environment.name}", change_class=ChangeClass.EMERGENCY,
        type="bug_fix", priority="high", impact="medium", likelihood="medium",
        description=f"Recorded by the portal: deployment #{dep.pk} was rolled back by {who}. {reason}"[:5000],
        implementation_plan="Roll back to the previous version (the release's rollback plan).",
        rollback_plan="Redeploy the release once fixed.", testing_plan="Health checks after the restore.",
        requested_by=dep.requested_by if not automatic else None, planned_start=dep.started_at or timezone.now(),
        duration=max(1, int(((dep.finished_at or timezone.now()) - (dep.started_at or timezone.now()))
                            .total_seconds() // 60) or 1))
    change.save()
    change.environments.set([dep.environment])
    _link(change, dep)
    _link(change, dep.release)
    _assess(change)
    audit.record(action="change.create", obj=change, after={"recorded_for": f"deployment #{dep.pk}",
                                                            "automatic": bool(automatic)},
                 reason="a rollback records itself as an emergency change")
    for name in ("submit", "approve", "implement", "validate"):
        getattr(change, name)(by=None, reason="a rollback is never blocked; reviewed afterwards")
    change.save()
    return change


def close_validated(now=None):
    """Beat: a validating change whose deployments succeeded and passed their bake time without a rollback closes
    successful (an emergency one waits for its review)."""
    from releases.models import Deployment

    now = now or timezone.now()
    closed = 0
    dep_type = ContentType.objects.get_for_model(Deployment)
    for change in ChangeRequest.objects.filter(status=ChangeStatus.VALIDATING).exclude(
            change_class=ChangeClass.EMERGENCY):
        ids = [int(i) for i in change.links.filter(content_type=dep_type).values_list("object_id", flat=True)]
        deployments = list(Deployment.objects.filter(pk__in=ids).select_related("environment"))
        if not deployments or any(d.status != "succeeded" for d in deployments):
            continue
        if any(d.finished_at + dt.timedelta(seconds=d.environment.bake_seconds) > now for d in deployments):
            continue  # still in its bake time
        with transaction.atomic():
            locked = _lock(change)
            if can_proceed(locked.close):
                locked.close(by=None, reason="validated: the deployments passed their health checks and bake time",
                             close_code=CloseCode.SUCCESSFUL, notes="closed by the portal after validation")
                locked.save()
                closed += 1
    return closed


# --- windows, freezes, templates, rules, environment policy (administrators / operations) ---------------------
WINDOW_FIELDS = ["name", "days", "start_time", "end_time", "timezone", "active"]
FREEZE_FIELDS = ["reason", "environments", "starts_at", "ends_at", "rule", "rule_start", "duration_minutes",
                 "timezone", "active"]
TEMPLATE_FIELDS = ["name", "version", "type", "description", "implementation_plan", "rollback_plan", "testing_plan",
                   "environments", "max_risk", "active"]
RULE_FIELDS = ["description", "change_class", "change_type", "min_risk", "environment", "production_only", "role",
               "quorum", "active"]


def _zone_problem(name):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)"
    return None


def window_save(*, environment, data, by, window=None):
    access.require(by, [environment], Capability.CONFIGURE)
    problems = {}
    days = data.get("days", window.days if window else [])
    if not isinstance(days, list) or not days or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
        problems["days"] = ["weekdays as numbers, Monday = 0"]
    zone = _zone_problem(data.get("timezone", window.timezone if window else "UTC"))
    if zone:
        problems["timezone"] = [zone]
    if problems:
        raise errors.ValidationFailed("invalid window", field_errors=problems)
    with transaction.atomic():
        if window is None:
            return model_create(model=ChangeWindow, data=data, fields=WINDOW_FIELDS, by=by,
                                extra={"environment": environment}, action="changewindow.create")
        return model_update(instance=ChangeWindow.objects.select_for_update().get(pk=window.pk), data=data,
                            fields=WINDOW_FIELDS, by=by, action="changewindow.update")[0]


def freeze_save(*, data, by, freeze=None):
    envs = data.get("environments") or (list(freeze.environments.all()) if freeze else [])
    if not envs:
        if not getattr(by, "is_superuser", False):
            raise errors.PermissionDenied("a freeze of every environment is set by an administrator")
    else:
        access.require(by, envs, Capability.CONFIGURE)
    merged = {**({name: getattr(freeze, name) for name in FREEZE_FIELDS if name != "environments"} if freeze else {}),
              **data}
    problems = {}
    if merged.get("rule"):
        problem = schedule.rule_problem(merged["rule"])
        if problem:
            problems["rule"] = [problem]
        if not merged.get("duration_minutes"):
            problems["duration_minutes"] = ["a recurring freeze needs its length in minutes"]
    elif not (merged.get("starts_at") and merged.get("ends_at")) or merged["ends_at"] <= merged["starts_at"]:
        problems["ends_at"] = ["a one-off freeze needs a start and a later end"]
    zone = _zone_problem(merged.get("timezone") or "UTC")
    if zone:
        problems["timezone"] = [zone]
    if problems:
        raise errors.ValidationFailed("invalid freeze", field_errors=problems)
    with transaction.atomic():
        if freeze is None:
            return model_create(model=ChangeFreeze, data=data, fields=FREEZE_FIELDS, by=by, action="changefreeze.create",
                                extra={"created_by": by if getattr(by, "is_authenticated", False) else None})
        return model_update(instance=ChangeFreeze.objects.select_for_update().get(pk=freeze.pk), data=data,
                            fields=FREEZE_FIELDS, by=by, action="changefreeze.update")[0]


def _require_admin(by, what):
    if by is not None and not getattr(by, "is_superuser", False):
        raise errors.PermissionDenied(f"only an administrator may change {what}")


def template_save(*, data, by, template=None):
    """A new template (or a new version of one): every version is approved separately."""
    _require_admin(by, "change templates")
    with transaction.atomic():
        if template is None:
            return model_create(model=ChangeTemplate, data=data, fields=TEMPLATE_FIELDS, by=by,
                                action="changetemplate.create")
        if template.is_approved:
            raise errors.TransitionNotAllowed(f"{template} is approved: save a new version instead")
        return model_update(instance=ChangeTemplate.objects.select_for_update().get(pk=template.pk), data=data,
                            fields=TEMPLATE_FIELDS, by=by, action="changetemplate.update")[0]


def template_approve(*, template, by):
    """An administrator other than its author approves a template version: standard changes may use it."""
    _require_admin(by, "change templates")
    with transaction.atomic():
        locked = ChangeTemplate.objects.select_for_update().get(pk=template.pk)
        if locked.is_approved:
            raise errors.TransitionNotAllowed(f"{locked} is already approved")
        ChangeTemplate.objects.filter(pk=locked.pk).update(approved_by=by, approved_at=timezone.now())
        audit.record(action="changetemplate.approve", obj=locked, by=by)
    template.refresh_from_db()
    return template


def rule_save(*, data, by, rule=None):
    _require_admin(by, "the approval policy")
    with transaction.atomic():
        if rule is None:
            return model_create(model=ApprovalRule, data=data, fields=RULE_FIELDS, by=by, action="approvalrule.create")
        return model_update(instance=ApprovalRule.objects.select_for_update().get(pk=rule.pk), data=data,
                            fields=RULE_FIELDS, by=by, action="approvalrule.update")[0]


def rule_delete(*, rule, by):
    _require_admin(by, "the approval policy")
    with transaction.atomic():
        model_delete(instance=rule, by=by, fields=RULE_FIELDS, action="approvalrule.delete")


def window_delete(*, window, by):
    access.require(by, [window.environment], Capability.CONFIGURE)
    with transaction.atomic():
        model_delete(instance=window, by=by, fields=WINDOW_FIELDS, action="changewindow.delete")


def freeze_delete(*, freeze, by):
    envs = list(freeze.environments.all())
    if envs:
        access.require(by, envs, Capability.CONFIGURE)
    else:
        _require_admin(by, "a freeze of every environment")
    with transaction.atomic():
        model_delete(instance=freeze, by=by, fields=FREEZE_FIELDS, action="changefreeze.delete")


def policy_set(*, environment, requires, by):
    """Whether deploying to ``environment`` needs a covering change (administrative access)."""
    access.require(by, [environment], Capability.CONFIGURE)
    if not isinstance(requires, bool):
        raise errors.ValidationFailed("requires_change must be true or false")
    with transaction.atomic():
        row, created = EnvironmentChangePolicy.objects.select_for_update().get_or_create(
            environment=environment, defaults={"requires_change": requires})
        before = None if created else {"requires_change": row.requires_change}
        row.requires_change = requires
        row.save()
        audit.record(action="environment.change_policy", obj=environment, by=by, before=before,
                     after={"requires_change": requires})
    return row


def ensure_default_rules():
    """The seed's approval rules on an empty rule table (a fresh install has them from migration 0002)."""
    from django.contrib.auth.models import Group

    from .defaults import install

    return install(Group, ApprovalRule)


def environments_requiring_change():
    return [e for e in Environment.objects.all() if requires_change(e)]
