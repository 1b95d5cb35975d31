"""Operations people and systems perform on environments and releases.

Each service checks permission, opens a transaction, runs the transition, saves, records the audit event
and dispatches tasks on commit. Views, admin, API, commands and tasks all come through here.
"""
import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed

from pmrelease import audit, errors
from pmrelease.roles import Capability, Role, user_roles

from . import access, cadence, notes, versioning
from .models import (
    ApprovalDecision,
    CommunicationPlan,
    Environment,
    EnvironmentAccess,
    Prerequisite,
    Release,
    ReleaseApproval,
    ReleaseChange,
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
ENVIRONMENT_FIELDS = ["display_name", "purpose", "tier", "position", "promotes_to", "attached_to", "attachment",
                      "infrastructure", "data_source", "data_retention", "data_backup", "is_active"]


def _lock(release):
    return Release.objects.select_for_update().get(pk=release.pk)


# --- environments ------------------------------------------------------------------------------------
def environment_create(*, data, by):
    """A new environment (superusers only: it changes the promotion path and the access matrix)."""
    if not getattr(by, "is_superuser", False):
        raise errors.PermissionDenied("only an administrator may add environments")
    unknown = set(data) - {"name", *ENVIRONMENT_FIELDS}
    if unknown:
        raise errors.ValidationFailed(f"unknown or read-only fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        env = Environment(**data)
        errors.full_clean(env)
        env.save()
        audit.record(action="environment.create", obj=env, by=by, after=audit.snapshot(env, fields=ENVIRONMENT_FIELDS))
    return env


def environment_update(*, environment, data, by):
    """Edit an environment's specification (administrative access to it required)."""
    access.require(by, [environment], Capability.CONFIGURE)
    unknown = set(data) - set(ENVIRONMENT_FIELDS)
    if unknown:
        raise errors.ValidationFailed(f"unknown or read-only fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        env = Environment.objects.select_for_update().get(pk=environment.pk)
        before = audit.snapshot(env, fields=ENVIRONMENT_FIELDS)
        for key, value in data.items():
            setattr(env, key, value)
        errors.full_clean(env)
        env.save()
        b, a = audit.diff(before, audit.snapshot(env, fields=ENVIRONMENT_FIELDS))
        if a:
            audit.record(action="environment.update", obj=env, by=by, before=b, after=a)
    return env


def environment_set_access(*, environment, group, level, note="", by):
    """Grant a role group an access level in an environment (administrative access required)."""
    access.require(by, [environment], Capability.CONFIGURE)
    with transaction.atomic():
        row, created = EnvironmentAccess.objects.select_for_update().get_or_create(
            environment=environment, group=group, defaults={"level": level, "note": note},
        )
        before = None if created else {"level": row.level, "note": row.note}
        row.level, row.note = level, note
        row.save()
        audit.record(action="environment.access", obj=environment, by=by, before=before,
                     after={"group": group.name, "level": int(level), "note": note})
    return row


# --- versions ----------------------------------------------------------------------------------------
def latest_version():
    return versioning.latest(Release.objects.values_list("version", flat=True))


def propose_version(release_type):
    return versioning.propose(latest_version(), release_type)


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
PLAN_PARTS = ("changes", "prerequisites", "risk_assessment", "rollback_plan", "rollback_strategies",
              "rollback_steps", "communication_plan", "testing_requirements")


def _require_editor(by, release=None):
    perm = "releases.change_release" if release else "releases.add_release"
    if not by.has_perm(perm):
        raise errors.PermissionDenied(f"{by.username} may not {'edit' if release else 'create'} releases")


def _apply_plan(release, plan):
    """Replace the plan parts present in ``plan`` (each a list of dicts, or a dict for one-to-one parts)."""
    many = {
        "changes": ReleaseChange, "prerequisites": Prerequisite, "rollback_strategies": RollbackStrategy,
        "rollback_steps": RollbackStep, "testing_requirements": TestingRequirement,
    }
    single = {"risk_assessment": RiskAssessment, "rollback_plan": RollbackPlan,
              "communication_plan": CommunicationPlan}
    field_errors = {}
    for part, model in many.items():
        if part not in plan:
            continue
        getattr(release, part).all().delete()
        for index, item in enumerate(plan[part] or []):
            obj = model(release=release, **item)
            try:
                obj.full_clean(exclude=["release"])
            except ValidationError as exc:
                field_errors[f"{part}[{index}]"] = exc.message_dict
                continue
            obj.save()
    for part, model in single.items():
        if part not in plan:
            continue
        model.objects.filter(release=release).delete()
        if plan[part]:
            obj = model(release=release, **plan[part])
            try:
                obj.full_clean(exclude=["release", "level"])
            except ValidationError as exc:
                field_errors[part] = exc.message_dict
                continue
            obj.save()
    if field_errors:
        raise errors.ValidationFailed("invalid release plan", field_errors=field_errors)


def release_snapshot(release):
    """Everything an edit can change, for the audit trail's before/after."""
    data = audit.snapshot(release, fields=RELEASE_FIELDS)
    data["changes"] = [[c.kind, c.summary, c.reference] for c in release.changes.all()]
    data["prerequisites"] = [[p.type, p.description, p.status, p.owner, p.deadline and p.deadline.isoformat()]
                             for p in release.prerequisites.all()]
    data["rollback_steps"] = [[s.order, s.description, s.command, s.verification, s.timeout, s.on_failure]
                              for s in release.rollback_steps.all()]
    data["rollback_strategies"] = [[s.type, s.method, s.estimated_duration, s.risk]
                                   for s in release.rollback_strategies.all()]
    data["testing_requirements"] = [[t.name, t.environment_id, t.suites, t.required]
                                    for t in release.testing_requirements.all()]
    for part, model, fields in (
        ("risk_assessment", RiskAssessment, ["impact", "likelihood", "mitigation", "contingency"]),
        ("rollback_plan", RollbackPlan, ["prerequisites", "validation", "communication"]),
        ("communication_plan", CommunicationPlan, ["internal", "customer", "stakeholders", "incident"]),
    ):
        obj = model.objects.filter(release=release).first()
        data[part] = audit.snapshot(obj, fields=fields) if obj else None
    return data


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


def release_record_admin_edit(*, release, before, by, created=False):
    """Audit an edit made through the admin's forms (the admin validated and saved the rows)."""
    if created:
        audit.record(action="release.create", obj=release, by=by, after=release_snapshot(release))
        release_notify_approvers_later(release)
        return
    b, a = audit.diff(before, release_snapshot(release))
    if a:
        audit.record(action="release.update", obj=release, by=by, before=b, after=a)


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
def approval_eligibility(release, user, *, for_vote=True):
    """(eligible, reason): may ``user`` approve or reject ``release`` now?"""
    if not getattr(user, "is_authenticated", False):
        return False, "log in to approve releases"
    if release.created_by_id == user.pk:
        return False, "the author of a release cannot approve or reject it (separation of duties)"
    named_users = set(release.required_approvers.values_list("pk", flat=True))
    named_roles = set(release.required_roles.values_list("name", flat=True))
    if named_users or named_roles:
        eligible = user.pk in named_users or bool(named_roles & user_roles(user)) or user.is_superuser
        if not eligible:
            return False, f"{user.username} is not among this release's approvers"
    elif not access.is_approver(user):
        return False, f"{user.username} is not in the '{Role.APPROVERS.value}' group"
    for env in release.environments.all():
        if not access.can(user, env, Capability.APPROVE):
            return False, (f"{user.username} has {access.access_level(user, env).label} access to {env.name} "
                           "and cannot approve releases that target it")
    if for_vote and release.approvals.filter(round=release.approval_round, approver=user).exists():
        return False, f"{user.username} has already voted on this release in this approval round"
    return True, ""


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
        ok, reason = approval_eligibility(locked, by)
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
        ok, why = approval_eligibility(locked, by, for_vote=False)
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


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    needs_text: str  # "", "comment" (optional) or "reason" (required)
    style: str = "default"


ACTIONS = {
    "approve": Action("approve", "Approve", "comment", "primary"),
    "reject": Action("reject", "Reject", "reason", "danger"),
    "deploy": Action("deploy", "Start deployment", ""),
    "complete": Action("complete", "Mark deployed", ""),
    "fail": Action("fail", "Mark failed", "reason", "danger"),
    "rollback": Action("rollback", "Roll back", "reason", "danger"),
}


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


def available_actions(release, user):
    """The actions ``user`` may perform on ``release`` now (what the admin shows as buttons)."""
    result = []
    if release.status == ReleaseStatus.PLANNED and approval_eligibility(release, user)[0] \
            and not release.plan_blockers():
        result.append(ACTIONS["approve"])
    if can_proceed(release.reject) and approval_eligibility(release, user, for_vote=False)[0]:
        result.append(ACTIONS["reject"])
    envs = list(release.environments.all())
    may_deploy = all(access.can(user, env, Capability.DEPLOY) for env in envs)
    for name in ("deploy", "complete", "fail", "rollback"):
        if may_deploy and can_proceed(getattr(release, name)):
            result.append(ACTIONS[name])
    return result


def awaiting_approval(user):
    """Planned releases ``user`` may approve and has not voted on in the current round."""
    candidates = (Release.objects.filter(status=ReleaseStatus.PLANNED).exclude(created_by=user)
                  .prefetch_related("environments", "required_approvers", "required_roles"))
    return [r for r in candidates if approval_eligibility(r, user)[0]]


def eligible_approvers(release):
    users = get_user_model().objects.filter(is_active=True).exclude(pk=release.created_by_id)
    named = Q(pk__in=release.required_approvers.all()) | Q(groups__in=release.required_roles.all())
    if release.required_approvers.exists() or release.required_roles.exists():
        users = users.filter(named)
    else:
        users = users.filter(groups__name=Role.APPROVERS.value)
    return [u for u in users.distinct() if approval_eligibility(release, u)[0]]


def release_notify_approvers_later(release):
    from .tasks import notify_approvers

    notify_approvers.delay_on_commit(release.pk, release.approval_round)


def release_notify_approvers(*, release, approval_round):
    """E-mail the eligible approvers that a release awaits them (once per approval round)."""
    if release.status != ReleaseStatus.PLANNED or release.approval_round != approval_round:
        return 0
    recipients = [u.email for u in eligible_approvers(release) if u.email]
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


# --- notes and cadence -------------------------------------------------------------------------------
def release_notes(release):
    date = (release.deployed_at or release.scheduled_for or timezone.now()).date()
    return notes.render(
        version=release.version, product=settings.PRODUCT_NAME, date=date,
        changes=[(c.kind, c.summary, c.reference) for c in release.changes.all()],
    )


SHIPPED = [ReleaseStatus.DEPLOYED]


def cadence_report(today=None):
    """Cadence status per release type, from shipped and planned releases."""
    today = today or timezone.localdate()
    report = []
    for release_type in ReleaseType.values:
        shipped = (Release.objects.filter(type=release_type, status__in=SHIPPED, deployed_at__isnull=False)
                   .order_by("-deployed_at").values_list("deployed_at", flat=True).first())
        planned = (Release.objects.filter(type=release_type, status__in=[ReleaseStatus.PLANNED, ReleaseStatus.APPROVED],
                                          scheduled_for__date__gte=today)
                   .order_by("scheduled_for").values_list("scheduled_for", flat=True).first())
        report.append(cadence.status(release_type, last_shipped=shipped and timezone.localtime(shipped).date(),
                                     next_planned=planned and timezone.localtime(planned).date(), today=today))
    return report


def cadence_calendar(year, month):
    first = dt.date(year, month, 1)
    last = (first + dt.timedelta(days=32)).replace(day=1)
    releases = Release.objects.filter(scheduled_for__date__gte=first, scheduled_for__date__lt=last)
    entries = [(timezone.localtime(r.scheduled_for).date(), r) for r in releases]
    for status in cadence_report():
        if status.due and first <= status.due < last:
            entries.append((status.due, f"{status.release_type} due ({status.label})"))
    return cadence.month_grid(year, month, entries)


def cadence_check_and_notify():
    """Daily: tell release managers (operations) which release types are overdue."""
    overdue = [s for s in cadence_report() if s.overdue]
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
