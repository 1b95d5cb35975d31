"""Reads of releases that take more than a lookup: what awaits a person's approval, who may approve, the
release notes, the cadence calendar."""
import datetime as dt

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django_fsm import can_proceed

from pmrelease.roles import Capability

from . import access, cadence, notes, versioning
from .models import Environment, Release, ReleaseApproval, ReleaseStatus, ReleaseType
from .policy import POLICY


def latest_version():
    return versioning.latest(Release.objects.values_list("version", flat=True))


def approval_eligibility(release, user, *, for_vote=True):
    """(eligible, reason): may ``user`` approve or reject ``release`` now? (The release policy decides.)"""
    return POLICY.eligibility(release, user, for_vote=for_vote)


def approval_blockers(release):
    """Why a planned release is not approved yet: its plan, the votes it still needs, and a quorum nobody can
    reach (more approvals needed than people who may give them)."""
    if release.status != ReleaseStatus.PLANNED:
        return []
    reasons = release.plan_blockers() + list(POLICY.tally(release).missing)
    need, people = release.effective_quorum(), len(POLICY.candidates(release))
    if need > people:
        reasons.append(f"{need} approvals are needed but only {people} people may approve this release: name "
                       "more approvers")
    return reasons


def locations(release):
    """Where the release runs now: [(environment, since, deployment)], in promotion order."""
    return [(env, env.current_since, env.current_deployment_id)
            for env in Environment.objects.filter(current_release=release).order_by("position", "name")]


def visible_releases(user, queryset=None):
    """The releases ``user`` may see: those targeting at least one environment they can see, and those that
    target nothing yet."""
    queryset = Release.objects.all() if queryset is None else queryset
    if getattr(user, "is_superuser", False):
        return queryset
    visible = access.visible_environments(user).values("pk")
    targets = Release.environments.through.objects.filter(release_id=OuterRef("pk"))
    return queryset.filter(Exists(targets.filter(environment_id__in=visible)) | ~Exists(targets))


def awaiting_approval(user):
    """Planned releases ``user`` may approve and has not voted on in the current round, newest first. What SQL
    can decide (planned, visible, not their own, no vote of theirs in the round) is decided there; the policy
    then checks the rest on what is left, with everything it reads prefetched (a flat number of queries)."""
    if not getattr(user, "is_authenticated", False):
        return []
    voted = ReleaseApproval.objects.filter(release_id=OuterRef("pk"), round=OuterRef("approval_round"),
                                           approver_id=user.pk)
    candidates = (visible_releases(user, Release.objects.filter(status=ReleaseStatus.PLANNED))
                  .exclude(created_by=user).exclude(Exists(voted))
                  .select_related("risk_assessment")
                  .prefetch_related("environments", "required_approvers", "required_roles")
                  .order_by("-created_at", "-id"))
    return [r for r in candidates if approval_eligibility(r, user, for_vote=False)[0]]


def available_actions(release, user):
    """The names of the transitions ``user`` may perform on ``release`` now (the admin's buttons)."""
    result = []
    if release.status == ReleaseStatus.PLANNED and approval_eligibility(release, user)[0] \
            and not release.plan_blockers():
        result.append("approve")
    if can_proceed(release.reject) and approval_eligibility(release, user, for_vote=False)[0]:
        result.append("reject")
    if can_proceed(release.redeploy) and (access.is_approver(user) or any(
            access.can(user, env, Capability.DEPLOY) for env in release.environments.all())):
        result.append("redeploy")
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


# --- discovery and the deployment board ------------------------------------------------------------------
def last_deployments(environment_ids):
    """{environment_id: its most recent deployment (release and requester loaded)} in one query."""
    from django.db.models import Max

    from .models import Deployment

    latest = (Deployment.objects.filter(environment_id__in=list(environment_ids)).values("environment_id")
              .annotate(last=Max("id")).values_list("last", flat=True))
    return {dep.environment_id: dep for dep in
            Deployment.objects.filter(pk__in=list(latest)).select_related("release", "requested_by")}


def deployment_board(user, *, releases=12):
    """What the admin's landing page shows (Octopus's dashboard): the environments ``user`` may see as columns in
    promotion order, the newest releases as rows, each cell the latest deployment of that release there (None:
    never deployed), and which release each environment runs now."""
    from .models import Deployment

    columns = list(access.visible_environments(user).filter(is_active=True).order_by("position", "name"))
    rows = list(visible_releases(user).order_by("-created_at", "-id")[:releases])
    cells = {}
    for dep in (Deployment.objects.filter(release__in=rows, environment__in=columns)
                .only("id", "status", "release_id", "environment_id", "created_at", "finished_at").order_by("id")):
        cells[(dep.release_id, dep.environment_id)] = dep
    return {
        "environments": columns,
        "rows": [{"release": release,
                  "cells": [{"environment": env, "deployment": cells.get((release.pk, env.pk)),
                             "current": env.current_release_id == release.pk} for env in columns]}
                 for release in rows],
    }
