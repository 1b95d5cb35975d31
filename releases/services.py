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

from pmrelease import approvals, audit, errors, leaks
from pmrelease.roles import Capability, Role
from pmrelease.services import model_create, model_delete, model_update

from . import access, notifications, selectors, versioning
from .models import (
    ApprovalDecision,
    ApproverRole,
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
    RollbackTrigger,
    TestingRequirement,
)
from .policy import POLICY

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
    "rollback_triggers": (RollbackTrigger, ["metric", "operator", "threshold", "duration", "action", "cooldown",
                                            "compare", "compare_mode", "no_data", "scale_factor", "enabled"]),
}
PLAN_SINGLE = {
    "risk_assessment": (RiskAssessment, ["impact", "likelihood", "mitigation", "contingency"]),
    "rollback_plan": (RollbackPlan, ["prerequisites", "validation", "communication"]),
    "communication_plan": (CommunicationPlan, ["internal", "customer", "stakeholders", "incident"]),
}
PLAN_PARTS = (*PLAN_MANY, *PLAN_SINGLE)


MAX_QUORUM = 50


def _require_editor(by, release=None, targets=None):
    """Creating needs the add permission; editing or deleting needs the change permission and authorship or
    the release-manager role. Either way, read access to every environment the release targets (before and
    after the edit): nobody plans for, edits or deletes in environments they cannot see."""
    perm = "releases.change_release" if release else "releases.add_release"
    if not by.has_perm(perm):
        raise errors.PermissionDenied(f"{by.username} may not {'edit' if release else 'create'} releases")
    if release is not None and release.created_by_id != by.pk and not access.is_approver(by):
        raise errors.PermissionDenied(
            f"{by.username} did not write release {release.version}: only its author or a release manager "
            f"('{Role.APPROVERS.value}') may change or delete it")
    envs = list(release.environments.all()) if release is not None else []
    envs += [env for env in (targets or []) if env not in envs]
    for env in envs:
        if not access.can(by, env, Capability.VIEW):
            raise errors.PermissionDenied(f"{by.username} has no access to {env.name}: a release that targets it "
                                          "is not theirs to plan or change")


def _check_approvers(release):
    """Named approvers must be eligible under the policy, and the quorum within reach of those who may
    approve; ValidationFailed naming each problem."""
    field_errors = {}
    people = [p for p in (POLICY.may_be_named(release, u) for u in release.required_approvers.all()) if not p[0]]
    if people:
        field_errors["required_approvers"] = [why for _, why in people]
    roles = [g.name for g in release.required_roles.all() if not POLICY.role_may_be_named(release, g)]
    if roles:
        field_errors["required_roles"] = [
            f"{name} is neither the '{Role.APPROVERS.value}' role nor one an administrator allowed to approve "
            f"releases like this one" for name in roles]
    if field_errors:
        raise errors.ValidationFailed("invalid approvers", field_errors=field_errors)
    if release.quorum > MAX_QUORUM:
        raise errors.ValidationFailed("invalid quorum", field_errors={"quorum": [f"at most {MAX_QUORUM}"]})
    eligible = POLICY.candidates(release)
    if release.quorum > len(eligible):
        names = ", ".join(u.get_username() for u in eligible) or "nobody"
        raise errors.ValidationFailed("invalid quorum", field_errors={"quorum": [
            f"{release.quorum} approvals can never be reached: {len(eligible)} people may approve this release "
            f"({names})"]})


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
    release._state.fields_cache.pop("risk_assessment", None)  # the cached one-to-one may be the replaced row


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


def _check_triggers(release):
    """The release's own rollback triggers: valid, on metrics the providers of its targets know."""
    from .deploy import triggers

    rows = list(release.rollback_triggers.all())
    if not rows:
        return
    known = sorted({m for env in release.environments.all() for m in triggers.known_metrics(env)}) or None
    problems = [p for i, row in enumerate(rows)
                for p in triggers.spec_problems(triggers.spec_of(row), known_metrics=known,
                                                label=f"rollback_triggers[{i}]")]
    if problems:
        raise errors.ValidationFailed("invalid rollback triggers", field_errors={"rollback_triggers": problems})


def _targets(data):
    return list(data.get("environments") or [])


def _scan(data, plan, *, by, release=None, before=None):
    """The leak check over a release's free text (title, description, reasons) and its plan's; on an edit only
    what changes (an unchanged plan part keeps its text)."""
    texts = {name: data[name] for name in ("title", "description") if name in data}
    for part, value in (plan or {}).items():
        if before is None or _plan_changed(before, part, value):
            texts[f"plan.{part}"] = value
    leaks.check(texts, by=by, obj=release)


def _plan_changed(before, part, value):
    if part in PLAN_SINGLE:
        old = before.get(part) or {}
        return not isinstance(value, dict) or any(old.get(k) != v for k, v in value.items())
    return True


def release_create(*, data, by, plan=None):
    """Create a planned release. ``version`` may be omitted: it is then proposed from the last release."""
    data = dict(data)
    _require_editor(by, targets=_targets(data))
    release_type = data.get("type")
    if release_type not in ReleaseType.values:
        raise errors.ValidationFailed("invalid release type", field_errors={
            "type": [f"must be one of {', '.join(ReleaseType.values)}"]})
    unknown = set(data) - set(RELEASE_FIELDS)
    if unknown:
        raise errors.ValidationFailed(f"unknown or read-only fields: {', '.join(sorted(unknown))}")
    m2m = {key: data.pop(key) for key in ("environments", "required_approvers", "required_roles") if key in data}
    _scan(data, plan, by=by)
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
        _check_approvers(release)
        _check_triggers(release)
        audit.record(action="release.create", obj=release, by=by, after=release_snapshot(release))
        release_notify_approvers_later(release)
    return release


def release_update(*, release, data, by, plan=None):
    """Edit a planned release and/or its plan; approved and later releases are frozen. An edit of anything
    that was being approved withdraws the round's votes and opens a new round (audited with what changed)."""
    data = dict(data)
    _require_editor(by, release, targets=_targets(data))
    unknown = set(data) - set(RELEASE_FIELDS)
    if unknown:
        raise errors.ValidationFailed(f"unknown or read-only fields: {', '.join(sorted(unknown))}")
    m2m = {key: data.pop(key) for key in ("environments", "required_approvers", "required_roles") if key in data}
    with transaction.atomic():
        locked = _lock(release)
        if locked.status != ReleaseStatus.PLANNED:
            raise errors.TransitionNotAllowed(
                f"release {locked.version} is {locked.status}: only planned releases can be edited"
                + (" (reject it back to planned first)" if locked.status == ReleaseStatus.APPROVED else "")
            )
        before = release_snapshot(locked)
        _scan({k: v for k, v in data.items() if before.get(k) != v}, plan, by=by, release=locked, before=before)
        if "version" in data and data["version"] != locked.version:
            check_version(data["version"], data.get("type", locked.type), exclude_pk=locked.pk)
        for key, value in data.items():
            setattr(locked, key, value)
        errors.full_clean(locked, exclude=["status"])
        locked.save()
        for key, values in m2m.items():
            getattr(locked, key).set(values)
        _apply_plan(locked, plan or {})
        _check_approvers(locked)
        _check_triggers(locked)
        b, a = audit.diff(before, release_snapshot(locked))
        if a:
            audit.record(action="release.update", obj=locked, by=by, before=b, after=a)
            if approvals.withdraw(locked, votes=locked.approvals, by=by, changed=list(a)):
                release_notify_approvers_later(locked)
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
    """Record ``by``'s approval; when the round's requirement is met the release becomes approved.

    Returns (approval, transitioned). Concurrent last votes are serialised by the row lock: exactly one
    of them performs the transition; the other finds the release approved and is refused with 409.
    """
    with transaction.atomic():
        locked = _lock(release)
        if locked.status != ReleaseStatus.PLANNED:
            raise errors.TransitionNotAllowed(f"release {locked.version} is {locked.status}, not planned: "
                                              "there is nothing to approve")
        ok, reason = POLICY.eligibility(locked, by)
        if not ok:
            raise errors.PermissionDenied(reason)
        access.require_step_up(by, list(locked.environments.all()), "approve a release")
        blockers = locked.plan_blockers()
        if blockers:
            raise errors.TransitionNotAllowed("the release plan is not ready for approval", reasons=blockers)
        approval = ReleaseApproval.objects.create(release=locked, approver=by, round=locked.approval_round,
                                                  decision=ApprovalDecision.APPROVED, comment=comment)
        result = POLICY.tally(locked)
        audit.record(action="release.approval", obj=locked, by=by, reason=comment,
                     after={"decision": "approved", "round": locked.approval_round, "approvals": result.approvals,
                            "quorum": result.needed})
        transitioned = False
        if result.satisfied:
            locked.approve(by=by, reason=f"quorum met ({result.approvals} of {result.needed})")
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
        ok, why = POLICY.eligibility(locked, by, for_vote=False)
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


def release_redeploy(*, release, by, reason):
    """Make a release whose deployment failed or was rolled back deployable again, under the approvals it has
    (they must still hold), with a reason: a flaky test or an environment problem needs no new version."""
    if not (reason or "").strip():
        raise errors.ValidationFailed("a redeploy needs a reason", field_errors={"reason": ["This field is required."]})
    with transaction.atomic():
        locked = _lock(release)
        if not can_proceed(locked.redeploy):
            raise errors.TransitionNotAllowed(f"release {locked.version} is {locked.status}: only a failed or "
                                              "rolled-back release can be redeployed")
        targets = list(locked.environments.all())
        if not (access.is_approver(by) or any(access.can(by, env, Capability.DEPLOY) for env in targets)):
            raise errors.PermissionDenied(f"{by.username} may deploy to none of the release's environments")
        ok, why = POLICY.still_valid(locked)
        if not ok:
            raise errors.TransitionNotAllowed(why + ": reject it back to planned for a new approval round")
        locked.redeploy(by=by, reason=reason)
        locked.save()
    release.refresh_from_db()
    return release


# The transitions people run on a release, and what text each takes: "comment" (optional) or "reason"
# (required). Deploying, completing, failing and rolling back follow the release's deployments.
TRANSITION_TEXT = {"approve": "comment", "reject": "reason", "redeploy": "reason"}


def release_transition(*, release, name, by, text=""):
    """Run the named transition (the API's and admin's single entry point)."""
    leaks.check({"reason": text}, by=by, obj=release)
    if name == "approve":
        return release_approve(release=release, by=by, comment=text)[0].release
    if name == "reject":
        return release_reject(release=release, by=by, reason=text)
    if name == "redeploy":
        return release_redeploy(release=release, by=by, reason=text)
    raise errors.ValidationFailed(f"unknown transition '{name}' (approve, reject or redeploy)")


def release_notify_approvers_later(release):
    from .tasks import notify_approvers

    notify_approvers.delay_on_commit(release.pk, release.approval_round)


def release_notify_approvers(*, release, approval_round):
    """Tell the eligible approvers (e-mail) and the subscribed channels that a release awaits approval (once per
    approval round, through pmrelease.delivery)."""
    if release.status != ReleaseStatus.PLANNED or release.approval_round != approval_round:
        return 0
    recipients = [u.email for u in POLICY.candidates(release) if u.email]
    notifications.approval_requested(release=release, approval_round=approval_round, recipients=recipients)
    return len(recipients)


# --- who else may approve (administrators) -----------------------------------------------------------
APPROVER_ROLE_FIELDS = ["group", "max_risk", "environments", "note"]


def _require_administrator(by):
    if not getattr(by, "is_superuser", False):
        raise errors.PermissionDenied("only an administrator may change who may approve releases")


def approver_role_save(*, data, by, role=None):
    """Allow a role to approve releases up to a risk level in some environments (or change that)."""
    _require_administrator(by)
    with transaction.atomic():
        if role is None or role.pk is None:
            return model_create(model=ApproverRole, data=data, fields=APPROVER_ROLE_FIELDS, by=by,
                                action="approverrole.create")
        locked = ApproverRole.objects.select_for_update().get(pk=role.pk)
        return model_update(instance=locked, data=data, fields=APPROVER_ROLE_FIELDS, by=by,
                            action="approverrole.update")[0]


def approver_role_delete(*, role, by):
    _require_administrator(by)
    with transaction.atomic():
        model_delete(instance=role, by=by, fields=APPROVER_ROLE_FIELDS, action="approverrole.delete")


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
