"""DORA arithmetic (pure: no Django, no I/O): the four keys of one environment over periods, and their tiers.

Definitions (PROTOCOLS.md, "DORA"; docs/observability.md has the worked rules):

- **Deployment frequency**: deployments that succeeded (and stayed: not rolled back since) per period, with
  the rate per day; a deployment belongs to the period in which it started.
- **Lead time for changes**: median of change start → deployment succeeded, over the period's succeeded
  deployments. The change starts when its release was created or, when change requests cover it, when the
  earliest of them was submitted.
- **Change failure rate**: deployments that failed, were rolled back (automatically or by an operator) or are
  linked to an incident ÷ deployments that reached an outcome (succeeded, failed, rolled back); cancelled and
  still-running deployments count in neither.
- **Time to restore**: median over the period's restorations: each incident resolved (created → resolved) and
  each automatic rollback not linked to an incident (rollback started → rolled back). The incidents' and the
  rollbacks' medians are given apart as well.

Tiers follow the 2021 State of DevOps report, whose bands leave gaps (lead time "less than one hour" then
"between one day and one week"): each gap is closed by extending the slower tier up to the faster one's
boundary, and the change failure rate's 16–30 % band (shared by high, medium and low in 2021) is split at 30
and 45 % (the 2019 report's low band starts at 46 %). ``TIERS`` holds the boundaries.
"""
import calendar
import datetime as dt
import statistics
from dataclasses import dataclass, field

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY

ELITE, HIGH, MEDIUM, LOW = "elite", "high", "medium", "low"
TIER_ORDER = (ELITE, HIGH, MEDIUM, LOW)
PERIODS = ("week", "month", "quarter")

# Each metric: (tier, bound) in order; the first bound the value satisfies gives the tier, else "low".
TIERS = {
    # deployments per day, at least
    "deployment_frequency": ((ELITE, 1.0), (HIGH, 1 / 30), (MEDIUM, 1 / 182)),
    # seconds, strictly less than
    "lead_time": ((ELITE, HOUR), (HIGH, WEEK), (MEDIUM, 182 * DAY)),
    "time_to_restore": ((ELITE, HOUR), (HIGH, DAY), (MEDIUM, WEEK)),
    # a fraction, at most
    "change_failure_rate": ((ELITE, 0.15), (HIGH, 0.30), (MEDIUM, 0.45)),
}
TIER_LABELS = {
    "deployment_frequency": {ELITE: "on demand (daily or more)", HIGH: "between daily and monthly",
                             MEDIUM: "between monthly and every six months", LOW: "less than every six months"},
    "lead_time": {ELITE: "under an hour", HIGH: "under a week", MEDIUM: "under six months", LOW: "six months or more"},
    "time_to_restore": {ELITE: "under an hour", HIGH: "under a day", MEDIUM: "under a week", LOW: "a week or more"},
    "change_failure_rate": {ELITE: "0–15 %", HIGH: "16–30 %", MEDIUM: "31–45 %", LOW: "over 45 %"},
}

SUCCEEDED, FAILED, ROLLED_BACK = "succeeded", "failed", "rolled_back"
OUTCOMES = (SUCCEEDED, FAILED, ROLLED_BACK)


def tier(metric, value):
    """The DORA tier of ``value`` for ``metric`` (None: no data, no tier)."""
    if value is None:
        return None
    for name, bound in TIERS[metric]:
        if metric == "deployment_frequency" and value >= bound:
            return name
        if metric in ("lead_time", "time_to_restore") and value < bound:
            return name
        if metric == "change_failure_rate" and value <= bound:
            return name
    return LOW


@dataclass(frozen=True)
class Deployment:
    """One deployment of the environment. ``status``: its state now; ``succeeded_at``: when it succeeded
    (None when it never did or when a rollback since hides it); ``change_started_at``: its release's creation
    or the earliest covering change's submission."""

    id: int
    started_at: dt.datetime
    status: str
    succeeded_at: dt.datetime | None = None
    change_started_at: dt.datetime | None = None
    change_source: str = "release"  # release | change
    automatic_rollback: bool = False
    rollback_started_at: dt.datetime | None = None
    rollback_finished_at: dt.datetime | None = None
    incident: bool = False  # an incident is linked to it


@dataclass(frozen=True)
class Incident:
    id: int
    created_at: dt.datetime
    resolved_at: dt.datetime | None = None
    deployment_id: int | None = None


@dataclass(frozen=True)
class Period:
    kind: str
    start: dt.datetime
    end: dt.datetime  # exclusive

    @property
    def days(self):
        return (self.end - self.start).total_seconds() / DAY

    @property
    def label(self):
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        if self.kind == "month":
            return f"{self.start:%Y-%m}"
        return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"

    def __contains__(self, moment):
        return moment is not None and self.start <= moment < self.end


def period_start(kind, moment):
    """The start of the period of ``kind`` holding ``moment`` (weeks start on Monday, in moment's zone)."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "week":
        return day - dt.timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    if kind == "quarter":
        return day.replace(day=1, month=(day.month - 1) // 3 * 3 + 1)
    raise ValueError(f"period: one of {', '.join(PERIODS)}")


def _add(kind, start, n):
    if kind == "week":
        return start + dt.timedelta(weeks=n)
    months = 1 if kind == "month" else 3
    index = start.year * 12 + start.month - 1 + n * months
    year, month = divmod(index, 12)
    return start.replace(year=year, month=month + 1, day=min(start.day, calendar.monthrange(year, month + 1)[1]))


def periods(kind, now, count):
    """The ``count`` periods of ``kind`` ending with the one holding ``now``, oldest first."""
    last = period_start(kind, now)
    starts = [_add(kind, last, -n) for n in range(count - 1, -1, -1)]
    return [Period(kind, start, _add(kind, start, 1)) for start in starts]


def _median(values):
    return statistics.median(values) if values else None


@dataclass
class Keys:
    """The four keys of one environment in one period."""

    period: Period
    deployments: int = 0  # succeeded
    per_day: float = 0.0
    lead_time: float | None = None  # seconds, median
    lead_time_samples: int = 0
    lead_time_from_changes: int = 0  # samples whose change started with a change request
    finished: int = 0
    failed: int = 0
    change_failure_rate: float | None = None
    time_to_restore: float | None = None  # seconds, median of the restorations
    restorations: int = 0
    incident_restore: float | None = None
    automatic_rollback_time: float | None = None
    unresolved_incidents: int = 0
    tiers: dict = field(default_factory=dict)

    def as_dict(self):
        return {
            "period": {"label": self.period.label, "start": self.period.start.isoformat(),
                       "end": self.period.end.isoformat()},
            "deployment_frequency": {"deployments": self.deployments, "per_day": round(self.per_day, 6),
                                     "tier": self.tiers["deployment_frequency"]},
            "lead_time": {"median_seconds": self.lead_time, "samples": self.lead_time_samples,
                          "from_change_requests": self.lead_time_from_changes, "tier": self.tiers["lead_time"]},
            "change_failure_rate": {"rate": self.change_failure_rate, "failed": self.failed,
                                    "deployments": self.finished, "tier": self.tiers["change_failure_rate"]},
            "time_to_restore": {"median_seconds": self.time_to_restore, "restorations": self.restorations,
                                "incident_median_seconds": self.incident_restore,
                                "automatic_rollback_median_seconds": self.automatic_rollback_time,
                                "unresolved_incidents": self.unresolved_incidents,
                                "tier": self.tiers["time_to_restore"]},
        }


def keys(period, deployments, incidents, now=None):
    """The four keys of one environment's ``deployments`` and ``incidents`` in ``period``; the rate per day of
    the period holding ``now`` is over its days so far."""
    result = Keys(period=period)
    days = period.days if now is None or now >= period.end else max((now - period.start).total_seconds() / DAY, 1.0)
    mine = [d for d in deployments if d.started_at in period]
    succeeded = [d for d in mine if d.status == SUCCEEDED]
    result.deployments = len(succeeded)
    result.per_day = len(succeeded) / days
    # a change cannot reach the environment before it started: such a record (clock skew, imported history)
    # is left out rather than counted as a negative lead time
    leads = [((d.succeeded_at - d.change_started_at).total_seconds(), d.change_source == "change")
             for d in succeeded if d.succeeded_at is not None and d.change_started_at is not None
             and d.succeeded_at >= d.change_started_at]
    result.lead_time = _median([seconds for seconds, _ in leads])
    result.lead_time_samples = len(leads)
    result.lead_time_from_changes = sum(1 for _, from_change in leads if from_change)

    linked = {i.deployment_id for i in incidents if i.deployment_id is not None}
    outcome = [d for d in mine if d.status in OUTCOMES]
    failures = [d for d in outcome if d.status in (FAILED, ROLLED_BACK) or d.incident or d.id in linked]
    result.finished, result.failed = len(outcome), len(failures)
    result.change_failure_rate = len(failures) / len(outcome) if outcome else None

    in_period = [i for i in incidents if i.created_at in period]
    restored = [(i.resolved_at - i.created_at).total_seconds() for i in in_period if i.resolved_at is not None]
    result.unresolved_incidents = sum(1 for i in in_period if i.resolved_at is None)
    rollbacks = [d for d in mine if d.automatic_rollback and d.rollback_started_at and d.rollback_finished_at]
    rollback_times = [(d.rollback_finished_at - d.rollback_started_at).total_seconds() for d in rollbacks]
    alone = [(d.rollback_finished_at - d.rollback_started_at).total_seconds() for d in rollbacks
             if not (d.incident or d.id in linked)]
    result.incident_restore = _median(restored)
    result.automatic_rollback_time = _median(rollback_times)
    result.time_to_restore = _median(restored + alone)
    result.restorations = len(restored) + len(alone)

    result.tiers = {"deployment_frequency": tier("deployment_frequency", result.per_day),
                    "lead_time": tier("lead_time", result.lead_time),
                    "change_failure_rate": tier("change_failure_rate", result.change_failure_rate),
                    "time_to_restore": tier("time_to_restore", result.time_to_restore)}
    return result


def report(kind, now, count, deployments, incidents):
    """The keys of each of the ``count`` periods of ``kind`` up to ``now``, oldest first."""
    return [keys(p, deployments, incidents, now) for p in periods(kind, now, count)]
