"""Operations people and systems perform on releases: create, edit, delete, approve, reject, report.

Each service checks permission, opens a transaction, runs the transition, saves, records the audit event
and dispatches tasks on commit. Views, admin, API, commands and tasks all come through here.
"""
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django_fsm import can_proceed

from pmrelease import audit, errors
from pmrelease.roles import Capability, Role

from . import access, selectors, versioning
from .models import (
    ApprovalDecision,
    CommunicationPlan,
    Prerequisite,
    Release,
    ReleaseApproval,
    ReleaseNoteItem,
    ReleaseStatus,
    ReleaseType,
    RiskAssessment,
    RollbackPlan,
    RollbackStep,
    RollbackStrategy,
    TestingRequirement,
)

RELEASE_FIELDS = ["version", "type", "title", "description", "scheduled_for", "scheduled_until", "quorum",
                  "environments", "required_approvers", "required_roles"]
def _lock(release):
    return Release.objects.select_for_update().get(pk=release.pk)


# --- versions ----------------------------------------------------------------------------------------
def propose_version(release_type):
    return versioning.propose(selectors.latest_version(), release_type)


def check_version(version, release_type, exclude_pk=None):
    try:
        versioning.parse(version)
    except versioning.InvalidVersion as exc:
        raise errors.ValidationFailed("invalid version", field_errors={"version": [str(exc)]}) from exc
    if Release.objects.filter(version=version).exclude(pk=exclude_pk).exists():
        raise errors.ValidationFailed("duplicate version",
                                      field_errors={"version": [f"release {version} already exists"]})
    last = versioning.latest(Release.objects.exclude(pk=exclude_pk).values_list("version", flat=True))
    ok, message = versioning.is_valid_successor(last, version, release_type)
    if not ok:
        raise errors.ValidationFailed("invalid version", field_errors={"version": [message]})


# --- releases: create and edit -------------------------------------------------------------------------
# The parts of a release plan and the fields each row of a part has: lists of rows, or one row (one-to-one).
PLAN_MANY = {
    "note_items": (ReleaseNoteItem, ["kind", "summary", "reference", "position"]),
    "prerequisites": (Prerequisite, ["type", "description", "status", "owner", "deadline"]),
    "rollback_strategies": (RollbackStrategy, ["type", "method", "estimated_duration", "risk"]),
    "rollback_steps": (RollbackStep, ["order", "description", "command", "verification", "timeout", "on_failure"]),
    "testing_requirements": (TestingRequirement, ["name", "environment", "suites", "required"]),
}
PLAN_SINGLE = {
    "risk_assessment": (RiskAssessment, ["impact", "likelihood", "mitigation", "contingency"]),
    "rollback_plan": (RollbackPlan, ["prerequisites", "validation", "communication"]),
    "communication_plan": (CommunicationPlan, ["internal", "customer", "stakeholders", "incident"]),
}
PLAN_PARTS = (*PLAN_MANY, *PLAN_SINGLE)


def _require_editor(by, release=None):
    perm = "releases.change_release" if release else "releases.add_release"
    if not by.has_perm(perm):
        raise errors.PermissionDenied(f"{by.username} may not {'edit' if release else 'create'} releases")


def _apply_plan(release, plan):
    """Replace the plan parts present in ``plan`` (each a list of dicts, or a dict for one-to-one parts)."""
    field_errors = {}
    unknown = set(plan) - set(PLAN_PARTS)
    if unknown:
        raise errors.ValidationFailed(f"unknown plan parts: {', '.join(sorted(unknown))}")
    for part, (model, fields) in PLAN_MANY.items():
        if part not in plan:
            continue
        getattr(release, part).all().delete()
        for index, item in enumerate(plan[part] or []):
            obj = _plan_row(model, fields, release, item, f"{part}[{index}]", field_errors)
            if obj is not None:
                obj.save()
    for part, (model, fields) in PLAN_SINGLE.items():
        if part not in plan:
            continue
        model.objects.filter(release=release).delete()
        if plan[part]:
            obj = _plan_row(model, fields, release, plan[part], part, field_errors)
            if obj is not None:
                obj.save()
    if field_errors:
        raise errors.ValidationFailed("invalid release plan", field_errors=field_errors)


def _plan_row(model, fields, release, item, label, field_errors):
    unknown = set(item) - set(fields)
    if unknown:
        field_errors[label] = {name: ["unknown field"] for name in sorted(unknown)}
        return None
    obj = model(release=release, **item)
    try:
        obj.full_clean(exclude=["release", "level"] if model is RiskAssessment else ["release"])
    except ValidationError as exc:
        field_errors[label] = exc.message_dict
        return None
    return obj


def release_snapshot(release):
    """Everything an edit can change, for the audit trail's before/after."""
    data = audit.snapshot(release, fields=RELEASE_FIELDS)
    for part, (_, fields) in PLAN_MANY.items():
        data[part] = [[_plain(getattr(row, f"{name}_id" if name == "environment" else name)) for name in fields
                       if name != "position"] for row in getattr(release, part).all()]
    for part, (model, fields) in PLAN_SINGLE.items():
        obj = model.objects.filter(release=release).first()
        data[part] = audit.snapshot(obj, fields=fields) if obj else None
    return data


def _plain(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def release_create(*, data, by, plan=None):
    """Create a planned release. ``version`` may be omitted: it is then proposed from the last release."""
    _require_editor(by)
    data = dict(data)
    release_type = data.get("type")
    if release_type not in ReleaseType.values:
        raise errors.ValidationFailed("invalid release type", field_errors={
            "type": [f"must be one of {', '.join(ReleaseType.values)}"]})
    m2m = {key: data.pop(key) for key in ("environments", "required_approvers", "required_roles") if key in data}
    with transaction.atomic():
        data["version"] = data.get("version") or propose_version(release_type)
        check_version(data["version"], release_type)
        release = Release(created_by=by, **data)
        errors.full_clean(release, exclude=["status"])
        try:
            with transaction.atomic():
                release.save()
        except IntegrityError as exc:
            raise errors.ValidationFailed("duplicate version", field_errors={
                "version": [f"release {data['version']} already exists"]}) from exc
        for key, values in m2m.items():
            getattr(release, key).set(values)
        _apply_plan(release, plan or {})
        audit.record(action="release.create", obj=release, by=by, after=release_snapshot(release))
        release_notify_approvers_later(release)
    return release


def release_update(*, release, data, by, plan=None):
    """Edit a planned release and/or its plan; approved and later releases are frozen."""
    _require_editor(by, release)
    m2m = {key: data.pop(key) for key in ("environments", "required_approvers", "required_roles") if key in data}
    with transaction.atomic():
        locked = _lock(release)
        if locked.status != ReleaseStatus.PLANNED:
            raise errors.TransitionNotAllowed(
                f"release {locked.version} is {locked.status}: only planned releases can be edited"
                + (" (reject it back to planned first)" if locked.status == ReleaseStatus.APPROVED else "")
            )
        before = release_snapshot(locked)
        if "version" in data and data["version"] != locked.version:
            check_version(data["version"], data.get("type", locked.type), exclude_pk=locked.pk)
        for key, value in data.items():
            setattr(locked, key, value)
        errors.full_clean(locked, exclude=["status"])
        locked.save()
        for key, values in m2m.items():
            getattr(locked, key).set(values)
        _apply_plan(locked, plan or {})
        b, a = audit.diff(before, release_snapshot(locked))
        if a:
            audit.record(action="release.update", obj=locked, by=by, before=b, after=a)
    return locked


def release_delete(*, release, by):
    _require_editor(by, release)
    with transaction.atomic():
        locked = _lock(release)
        if locked.status != ReleaseStatus.PLANNED:
            raise errors.TransitionNotAllowed(f"release {locked.version} is {locked.status}: only planned "
                                              "releases can be deleted")
        audit.record(action="release.delete", obj=locked, by=by, before=release_snapshot(locked))
        locked.delete()


# --- approvals ---------------------------------------------------------------------------------------
def release_approve(*, release, by, comment=""):
    """Record ``by``'s approval; when the quorum is met the release becomes approved.

    Returns (approval, transitioned). Concurrent last votes are serialised by the row lock: exactly one
    of them performs the transition; the other finds the release approved and is refused with 409.
    """
    with transaction.atomic():
        locked = _lock(release)
        if locked.status != ReleaseStatus.PLANNED:
            raise errors.TransitionNotAllowed(f"release {locked.version} is {locked.status}, not planned: "
                                              "there is nothing to approve")
        ok, reason = selectors.approval_eligibility(locked, by)
        if not ok:
            raise errors.PermissionDenied(reason)
        blockers = locked.plan_blockers()
        if blockers:
            raise errors.TransitionNotAllowed("the release plan is not ready for approval", reasons=blockers)
        approval = ReleaseApproval.objects.create(release=locked, approver=by, round=locked.approval_round,
                                                  decision=ApprovalDecision.APPROVED, comment=comment)
        have, need = locked.current_approvals().count(), locked.effective_quorum()
        audit.record(action="release.approval", obj=locked, by=by, reason=comment,
                     after={"decision": "approved", "round": locked.approval_round, "approvals": have,
                            "quorum": need})
        transitioned = False
        if can_proceed(locked.approve):
            locked.approve(by=by, reason=f"quorum met ({have} of {need})")
            locked.save()
            transitioned = True
    release.refresh_from_db()
    return approval, transitioned


def release_reject(*, release, by, reason):
    """Reject with a reason: the release goes back to planned and a new approval round starts."""
    if not (reason or "").strip():
        raise errors.ValidationFailed("a rejection needs a reason", field_errors={"reason": ["This field is required."]})
    with transaction.atomic():
        locked = _lock(release)
        if not can_proceed(locked.reject):
            raise errors.TransitionNotAllowed(f"release {locked.version} is {locked.status}: only planned or "
                                              "approved releases can be rejected")
        ok, why = selectors.approval_eligibility(locked, by, for_vote=False)
        if not ok:
            raise errors.PermissionDenied(why)
        ReleaseApproval.objects.update_or_create(
            release=locked, approver=by, round=locked.approval_round,
            defaults={"decision": ApprovalDecision.REJECTED, "comment": reason},
        )
        locked.reject(by=by, reason=reason)
        locked.save()
        release_notify_approvers_later(locked)
    release.refresh_from_db()
    return release


# --- deployment outcomes (reported by CI or by the deployment engine) ----------------------------------
def _deployment_transition(release, by, name, reason):
    with transaction.atomic():
        locked = _lock(release)
        method = getattr(locked, name)
        if not can_proceed(method):
            raise errors.TransitionNotAllowed(f"release {locked.version} is {locked.status}: '{name}' is not "
                                              "allowed from this state")
        access.require(by, list(locked.environments.all()), Capability.DEPLOY)
        method(by=by, reason=reason)
        locked.save()
    release.refresh_from_db()
    return release


def release_deploy(*, release, by, reason=""):
    return _deployment_transition(release, by, "deploy", reason)


def release_complete(*, release, by, reason=""):
    return _deployment_transition(release, by, "complete", reason)


def release_fail(*, release, by, reason=""):
    return _deployment_transition(release, by, "fail", reason)


def release_rollback(*, release, by, reason=""):
    if not (reason or "").strip():
        raise errors.ValidationFailed("a rollback needs a reason", field_errors={"reason": ["This field is required."]})
    return _deployment_transition(release, by, "rollback", reason)


# What each transition takes as text: "" nothing, "comment" an optional comment, "reason" a required reason.
TRANSITION_TEXT = {"approve": "comment", "reject": "reason", "deploy": "", "complete": "", "fail": "reason",
                   "rollback": "reason"}


def release_transition(*, release, name, by, text=""):
    """Run the named action (the API's and admin's single entry point)."""
    if name == "approve":
        return release_approve(release=release, by=by, comment=text)[0].release
    if name == "reject":
        return release_reject(release=release, by=by, reason=text)
    handlers = {"deploy": release_deploy, "complete": release_complete, "fail": release_fail,
                "rollback": release_rollback}
    if name not in handlers:
        raise errors.ValidationFailed(f"unknown transition '{name}'")
    return handlers[name](release=release, by=by, reason=text)


def release_notify_approvers_later(release):
    from .tasks import notify_approvers

    notify_approvers.delay_on_commit(release.pk, release.approval_round)


def release_notify_approvers(*, release, approval_round):
    """E-mail the eligible approvers that a release awaits them (once per approval round)."""
    if release.status != ReleaseStatus.PLANNED or release.approval_round != approval_round:
        return 0
    recipients = [u.email for u in selectors.eligible_approvers(release) if u.email]
    if not recipients:
        return 0
    link = f"{settings.PORTAL_URL}/admin/releases/release/{release.pk}/change/"
    send_mail(
        subject=f"[{settings.PRODUCT_NAME}] Release {release.version} awaits your approval",
        message=f"{release.type.title()} release {release.version} — {release.title}\n\n"
                f"{release.description}\n\nReview and approve: {link}\n",
        from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=recipients,
    )
    return len(recipients)


# --- cadence -------------------------------------------------------------------------------
def cadence_check_and_notify():
    """Daily: tell release managers (operations) which release types are overdue."""
    overdue = [s for s in selectors.cadence_report() if s.overdue]
    if not overdue:
        return []
    users = get_user_model().objects.filter(groups__name__in=[Role.OPERATIONS.value, Role.APPROVERS.value],
                                            is_active=True).exclude(email="").distinct()
    lines = [f"- {s.release_type} releases ({s.label}): due {s.due or 'now'}"
             + (f", {s.overdue_days} days overdue" if s.overdue_days else ", none planned") for s in overdue]
    recipients = [u.email for u in users]
    if recipients:
        send_mail(subject=f"[{settings.PRODUCT_NAME}] Release cadence: {len(overdue)} type(s) overdue",
                  message="\n".join(lines), from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=recipients)
    return [s.release_type for s in overdue]
