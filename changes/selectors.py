"""Reads over change requests: who sees which, what awaits a person's decision, what a person may do next,
scheduling conflicts, and the change calendar (windows, freezes and scheduled changes)."""
import calendar as cal
import datetime as dt
from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils import timezone

from pmrelease.roles import Capability, user_roles
from releases import access

from . import schedule
from .models import (
    BEFORE_IMPLEMENTING,
    OPEN,
    ApprovalRule,
    ChangeClass,
    ChangeFreeze,
    ChangeLink,
    ChangeRequest,
    ChangeStatus,
    ChangeWindow,
)
from .policy import POLICY
from .services import IMPLEMENTED

DECIDING = (ChangeStatus.SUBMITTED, ChangeStatus.IN_REVIEW)


def approver_roles():
    """The roles the active approval rules name (their holders see every change: they may be asked to decide)."""
    return set(ApprovalRule.objects.filter(active=True).values_list("role__name", flat=True))


def visible_changes(user, queryset=None):
    """The changes ``user`` may see: every change for an administrator or a holder of a role the approval
    policy names; otherwise the changes touching an environment they can see, and their own."""
    queryset = ChangeRequest.objects.all() if queryset is None else queryset
    if user.is_superuser or user_roles(user) & approver_roles():
        return queryset
    envs = access.visible_environments(user)
    return queryset.filter(Q(environments__in=envs) | Q(requested_by=user)).distinct()


def awaiting_decision(user):
    """Submitted or in-review changes this user may approve now and whose approval would count: a role of theirs
    is still missing (not their own, not decided this round)."""
    candidates = POLICY.read_rules(list(
        visible_changes(user, ChangeRequest.objects.filter(status__in=DECIDING))
        .select_related("requested_by", "implementer", "template")
        .prefetch_related("environments", "approvers", "approvals__approver__groups", "links__content_type")
        .order_by("planned_start", "id")))
    return [c for c in candidates if POLICY.awaits(c, user) and POLICY.eligibility(c, user)[0]]


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    needs_text: str  # "", "comment" (optional) or "reason" (required)
    style: str = "default"


ACTIONS = {  # name -> label, text, style
    "submit": ("Submit for review", "", "primary"),
    "approve": ("Approve", "comment", "primary"),
    "reject": ("Reject", "reason", "danger"),
    "schedule": ("Schedule", "", "default"),
    "implement": ("Start implementing", "", "default"),
    "validate": ("Implemented: validate", "", "default"),
    "close": ("Close", "comment", "primary"),
    "fail": ("Mark failed", "reason", "danger"),
    "cancel": ("Cancel", "reason", "danger"),
    "retro_approve": ("Approve retrospectively", "comment", "primary"),
}


def available_actions(change, user):
    """The buttons this user sees on the change's page (the services decide again when pressed)."""
    names = []
    own = change.requested_by_id == user.pk
    manager = own or access.is_approver(user)
    status = change.status
    if status == ChangeStatus.DRAFT and manager:
        names.append("submit")
    if status in DECIDING and POLICY.eligibility(change, user)[0]:
        names.append("approve")
    if status in (*DECIDING, ChangeStatus.APPROVED, ChangeStatus.SCHEDULED) and \
            POLICY.eligibility(change, user, for_vote=False)[0]:
        names.append("reject")
    envs = list(change.environments.all())
    operator = all(access.can(user, env, Capability.DEPLOY) for env in envs)
    if status == ChangeStatus.APPROVED and operator and not change.is_emergency:
        names.append("schedule")
    if status in (ChangeStatus.APPROVED, ChangeStatus.SCHEDULED) and operator:
        names.append("implement")
    if status == ChangeStatus.IMPLEMENTING and operator:
        names.append("validate")
    if status == ChangeStatus.VALIDATING and operator and not change.needs_review:
        names.append("close")
    if status in (ChangeStatus.IMPLEMENTING, ChangeStatus.VALIDATING) and operator:
        names.append("fail")
    if status in BEFORE_IMPLEMENTING and manager:
        names.append("cancel")
    if change.is_emergency and change.pir_at and not change.retro_approved_at and \
            user.pk not in (change.requested_by_id, change.implementer_id, change.pir_reviewer_id):
        names.append("retro_approve")
    return [Action(name, *ACTIONS[name]) for name in names]


def may_review(change, user):
    return (change.is_emergency and change.status in (ChangeStatus.IMPLEMENTING, ChangeStatus.VALIDATING,
                                                      ChangeStatus.FAILED)
            and user.pk != change.implementer_id and not change.retro_approved_at)


def conflicts(change):
    """Other open changes scheduled on one of this change's environments at an overlapping time."""
    if change.planned_start is None:
        return []
    start, end = change.planned_start, change.planned_end
    others = (ChangeRequest.objects.filter(status__in=OPEN, environments__in=change.environments.all(),
                                           planned_start__lt=end, planned_start__gte=start - dt.timedelta(days=7))
              .exclude(pk=change.pk).distinct().prefetch_related("environments"))
    return [o for o in others if o.planned_end > start]


def all_conflicts(since, until):
    """Pairs of open changes overlapping on one environment in [since, until)."""
    changes = list(ChangeRequest.objects.filter(status__in=OPEN, planned_start__lt=until,
                                                planned_start__gte=since - dt.timedelta(days=7))
                   .prefetch_related("environments"))
    pairs = set()
    by_env = {}
    for c in changes:
        for env in c.environments.all():
            by_env.setdefault(env.pk, []).append(c)
    for items in by_env.values():
        for i, j in schedule.overlapping([(c.planned_start, c.planned_end) for c in items]):
            pairs.add((items[i].pk, items[j].pk) if items[i].pk < items[j].pk else (items[j].pk, items[i].pk))
    return sorted(pairs)


def open_reviews():
    """Emergency changes still waiting for their post-implementation review or retrospective approval."""
    return (ChangeRequest.objects.filter(change_class=ChangeClass.EMERGENCY, retro_approved_at__isnull=True,
                                         status__in=IMPLEMENTED).select_related("implementer").order_by("implemented_at", "id"))


def linked(change):
    """What the change covers: [(model label, object, label)] (objects deleted since show their label only)."""
    out = []
    for link in change.links.select_related("content_type").order_by("id"):
        model = link.content_type.model_class()
        obj = model.objects.filter(pk=link.object_id).first() if model is not None else None
        out.append((link.content_type.model, obj, link.label))
    return out


def changes_covering(obj):
    content_type = ContentType.objects.get_for_model(type(obj))
    return ChangeRequest.objects.filter(links__content_type=content_type, links__object_id=str(obj.pk)).distinct()


# --- the calendar -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    kind: str  # "window", "freeze" or "change"
    label: str
    start: dt.datetime
    end: dt.datetime
    environments: tuple
    change: ChangeRequest | None = None
    conflict: bool = False


def calendar_entries(start, end, environments):
    """Windows, freezes and scheduled changes in [start, end) over ``environments``."""
    entries = []
    env_ids = {e.pk for e in environments}
    for window in ChangeWindow.objects.filter(environment_id__in=env_ids, active=True).select_related("environment"):
        spec = schedule.Window(name=window.name, days=tuple(window.days), start=window.start_time,
                               end=window.end_time, tz=window.timezone)
        for opens, closes in spec.occurrences(start, end):
            entries.append(Entry("window", f"{window.environment.name}: {window.name}", opens, closes,
                                 (window.environment.name,)))
    for freeze in ChangeFreeze.objects.filter(active=True).prefetch_related("environments"):
        names = tuple(e.name for e in freeze.environments.all() if e.pk in env_ids) or (
            () if freeze.environments.exists() else ("every gated environment",))
        if not names:
            continue
        spec = schedule.Freeze(reason=freeze.reason, start=freeze.starts_at, end=freeze.ends_at, rule=freeze.rule,
                               first=freeze.rule_start, minutes=freeze.duration_minutes, tz=freeze.timezone)
        for begins, ends in spec.periods(start, end):
            entries.append(Entry("freeze", f"Freeze: {freeze.reason}", begins, ends, names))
    clashing = {pk for pair in all_conflicts(start, end) for pk in pair}
    for change in (ChangeRequest.objects.filter(planned_start__lt=end, planned_start__gte=start - dt.timedelta(days=7),
                                                environments__in=env_ids).distinct()
                   .exclude(status__in=[ChangeStatus.CANCELLED, ChangeStatus.DRAFT]).prefetch_related("environments")):
        if change.planned_end <= start:
            continue
        entries.append(Entry("change", str(change), change.planned_start, change.planned_end,
                             tuple(e.name for e in change.environments.all()), change, change.pk in clashing))
    return sorted(entries, key=lambda e: (e.start, e.kind))


def _days(first, last, entries, zone):
    """[(date, [entries touching that local date])] from ``first`` to ``last``."""
    out = []
    day = first
    while day <= last:
        opens = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
        closes = opens + dt.timedelta(days=1)
        seen, items = set(), []
        for e in entries:  # one line per window or freeze a day, however many occurrences touch it
            key = (e.kind, e.label, e.change.pk if e.change else None)
            if e.start < closes and e.end > opens and key not in seen:
                seen.add(key)
                items.append(e)
        out.append((day, items))
        day += dt.timedelta(days=1)
    return out


def month_calendar(year, month, environments, zone=None):
    """Weeks of (date or None, entries) for a month view, in ``zone`` (the portal's time zone by default)."""
    zone = zone or timezone.get_current_timezone()
    weeks = cal.Calendar().monthdatescalendar(year, month)
    first, last = weeks[0][0], weeks[-1][-1]
    start = dt.datetime.combine(first, dt.time(0), tzinfo=zone)
    entries = calendar_entries(start, start + dt.timedelta(days=(last - first).days + 1), environments)
    days = dict(_days(first, last, entries, zone))
    return [[(d if d.month == month else None, days[d]) for d in week] for week in weeks]


def week_calendar(monday, environments, zone=None):
    """(date, entries) for the seven days from ``monday``."""
    zone = zone or timezone.get_current_timezone()
    start = dt.datetime.combine(monday, dt.time(0), tzinfo=zone)
    entries = calendar_entries(start, start + dt.timedelta(days=7), environments)
    return _days(monday, monday + dt.timedelta(days=6), entries, zone)


def change_submissions(deployments):
    """For DORA's lead time (monitoring.selectors): ``{deployment id: [submitted_at, …]}`` of the submitted
    change requests covering each of ``deployments`` (linking the deployment itself or its release) in its
    environment (``deployments``: objects with ``pk``, ``release_id`` and ``environment_id``). One query over
    the links of the environments' submitted changes, whatever the number of deployments."""
    from releases.models import Deployment, Release

    deployments = list(deployments)
    found = {d.pk: [] for d in deployments}
    if not deployments:
        return found
    by_key = {}
    dep_type = ContentType.objects.get_for_model(Deployment)
    release_type = ContentType.objects.get_for_model(Release)
    for d in deployments:
        by_key.setdefault((dep_type.pk, str(d.pk), d.environment_id), []).append(d.pk)
        by_key.setdefault((release_type.pk, str(d.release_id), d.environment_id), []).append(d.pk)
    rows = (ChangeLink.objects.filter(content_type__in=[dep_type, release_type],
                                      change__environments__in={d.environment_id for d in deployments},
                                      change__submitted_at__isnull=False)
            .values_list("content_type_id", "object_id", "change__environments", "change__submitted_at"))
    for content_type_id, object_id, environment_id, submitted_at in rows:
        for pk in by_key.get((content_type_id, object_id, environment_id), ()):
            found[pk].append(submitted_at)
    return found
