"""Reads of releases that take more than a lookup: what awaits a person's approval, who may approve, the
release notes, the cadence calendar."""
import datetime as dt

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed

from pmrelease.roles import Capability, Role, user_roles

from . import access, cadence, notes, versioning
from .models import Release, ReleaseStatus, ReleaseType


def latest_version():
    return versioning.latest(Release.objects.values_list("version", flat=True))


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


def available_actions(release, user):
    """The names of the transitions ``user`` may perform on ``release`` now (the admin's buttons)."""
    result = []
    if release.status == ReleaseStatus.PLANNED and approval_eligibility(release, user)[0] \
            and not release.plan_blockers():
        result.append("approve")
    if can_proceed(release.reject) and approval_eligibility(release, user, for_vote=False)[0]:
        result.append("reject")
    envs = list(release.environments.all())
    may_deploy = all(access.can(user, env, Capability.DEPLOY) for env in envs)
    for name in ("deploy", "complete", "fail", "rollback"):
        if may_deploy and can_proceed(getattr(release, name)):
            result.append(name)
    return result


def release_notes(release):
    date = (release.deployed_at or release.scheduled_for or timezone.now()).date()
    return notes.render(
        version=release.version, product=settings.PRODUCT_NAME, date=date,
        changes=[(c.kind, c.summary, c.reference) for c in release.note_items.all()],
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
