"""Uptime arithmetic from a component's status history (pure: no Django import).

A component's history is a list of status changes; it becomes a list of intervals. Intervals from several
sources may overlap (two incidents on one component at once): ``flatten`` keeps, at every instant, the worst
status in force, so overlapping outages are never counted twice.

Downtime follows Statuspage's convention: a major outage counts in full, a partial outage at 30 %, degraded
performance and maintenance count as up. Time before the component existed (before its first history row)
is not counted at all: a component created yesterday has no 90-day record, not 89 days of uptime.
"""
import datetime as dt
from dataclasses import dataclass, field

from . import status as st

DOWNTIME_WEIGHT = {st.MAJOR: 1.0, st.PARTIAL: 0.3}


@dataclass(frozen=True)
class Interval:
    start: dt.datetime
    end: dt.datetime
    status: str


@dataclass
class Day:
    date: dt.date
    status: str | None  # worst status that day; None when the component did not exist yet
    uptime: float | None  # percent, None without data
    incidents: list = field(default_factory=list)

    @property
    def has_data(self):
        return self.status is not None


def intervals_from_changes(changes, *, until):
    """[(at, new_status), …] in any order → consecutive intervals ending at ``until``."""
    ordered = sorted(changes, key=lambda change: change[0])
    result = []
    for index, (at, status) in enumerate(ordered):
        end = ordered[index + 1][0] if index + 1 < len(ordered) else until
        if end > at:
            result.append(Interval(at, min(end, until), status))
    return [i for i in result if i.start < until]


def flatten(intervals):
    """Possibly overlapping intervals → non-overlapping ones with the worst status in force at each instant."""
    points = sorted({p for i in intervals for p in (i.start, i.end)})
    result = []
    for start, end in zip(points, points[1:], strict=False):
        active = [i.status for i in intervals if i.start <= start and i.end >= end]
        if not active:
            continue
        status = st.worst(active)
        if result and result[-1].status == status and result[-1].end == start:
            result[-1] = Interval(result[-1].start, end, status)
        else:
            result.append(Interval(start, end, status))
    return result


def _clip(intervals, start, end):
    for i in intervals:
        s, e = max(i.start, start), min(i.end, end)
        if e > s:
            yield Interval(s, e, i.status)


def covered_seconds(intervals, start, end):
    return sum((i.end - i.start).total_seconds() for i in _clip(flatten(intervals), start, end))


def downtime_seconds(intervals, start, end):
    return sum((i.end - i.start).total_seconds() * DOWNTIME_WEIGHT.get(i.status, 0.0)
               for i in _clip(flatten(intervals), start, end))


def uptime_percent(intervals, start, end):
    """Uptime in percent over [start, end), counting only the time covered by history; None without any."""
    flat = flatten(intervals)
    covered = sum((i.end - i.start).total_seconds() for i in _clip(flat, start, end))
    if covered <= 0:
        return None
    down = sum((i.end - i.start).total_seconds() * DOWNTIME_WEIGHT.get(i.status, 0.0)
               for i in _clip(flat, start, end))
    return round(100.0 * (1.0 - down / covered), 4)


def worst_status(intervals, start, end):
    clipped = list(_clip(flatten(intervals), start, end))
    return st.worst([i.status for i in clipped]) if clipped else None


def day_bounds(date, tz):
    """[start, end) of a calendar day in ``tz``, in UTC (DST days are 23 or 25 hours long).

    Converted to UTC because Python subtracts two datetimes sharing one tzinfo by wall clock, which would
    make every DST-change day 24 hours long."""
    start = dt.datetime.combine(date, dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def days(intervals, *, today, count, tz, now, incidents=()):
    """The last ``count`` calendar days ending with ``today`` (oldest first), each with its worst status,
    uptime and the incidents that touched it.

    ``incidents``: [(started_at, resolved_at_or_None, label)]; an unresolved incident runs until ``now``.
    """
    flat = flatten(intervals)
    result = []
    for offset in range(count - 1, -1, -1):
        date = today - dt.timedelta(days=offset)
        start, end = day_bounds(date, tz)
        end = min(end, now)
        touched = [label for (began, ended, label) in incidents
                   if began < end and (ended or now) > start]
        if end <= start:
            result.append(Day(date, None, None, touched))
            continue
        result.append(Day(date, worst_status(flat, start, end), uptime_percent(flat, start, end), touched))
    return result


WINDOWS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30),
           "90d": dt.timedelta(days=90)}


def window_uptimes(intervals, *, now):
    """{"24h": pct, "7d": pct, "30d": pct, "90d": pct} ending at ``now`` (None where there is no history)."""
    flat = flatten(intervals)
    return {name: uptime_percent(flat, now - span, now) for name, span in WINDOWS.items()}


def format_percent(value):
    """99.98 % style: two decimals, never rounding a real outage up to 100 %."""
    if value is None:
        return "no data"
    if value < 100.0:
        value = min(value, 99.99)
        return f"{int(value * 100) / 100:.2f}%"
    return "100.00%"
