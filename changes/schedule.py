"""Deployment windows and freezes as arithmetic on instants (pure: no Django).

A **window** is weekly: days of the week and a local start and end time in a time zone (e.g. Tue–Thu 10:00–16:00
Europe/Berlin). Local times are local: across a daylight-saving change the window still opens at 10:00 on the
wall clock, so its UTC offset moves. An end at or before the start runs past midnight (22:00–02:00).
A **freeze** is one-off (start, end) or recurring (an RFC 5545 rule, a duration, a time zone: every year from
20 December for 14 days). Instants are aware datetimes; they are compared in UTC.
"""
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from dateutil import rrule

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    name: str
    days: tuple  # weekday numbers, Monday = 0
    start: dt.time
    end: dt.time
    tz: str = "UTC"

    def occurrence(self, moment):
        """The window's occurrence containing ``moment`` as (start, end) in UTC, or None."""
        zone = ZoneInfo(self.tz)
        local = moment.astimezone(zone)
        for back in (0, 1):  # an overnight window may have opened the day before
            day = local.date() - dt.timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            opens = dt.datetime.combine(day, self.start, tzinfo=zone)
            close_day = day if self.end > self.start else day + dt.timedelta(days=1)
            closes = dt.datetime.combine(close_day, self.end, tzinfo=zone)
            opens, closes = _wall(opens), _wall(closes)
            if opens <= moment < closes:
                return opens.astimezone(dt.UTC), closes.astimezone(dt.UTC)
        return None

    def contains(self, start, end):
        """Does one occurrence of the window hold the whole span [start, end)?"""
        occ = self.occurrence(start)
        return occ is not None and end <= occ[1]

    def describe(self):
        days = ", ".join(DAYS[d].title() for d in sorted(self.days))
        return f"{self.name} ({days} {self.start:%H:%M}–{self.end:%H:%M} {self.tz})"

    def occurrences(self, start, end):
        """Every occurrence (opens, closes) in UTC that overlaps [start, end)."""
        zone = ZoneInfo(self.tz)
        day = start.astimezone(zone).date() - dt.timedelta(days=1)
        last = end.astimezone(zone).date()
        found = []
        while day <= last:
            if day.weekday() in self.days:
                opens = _wall(dt.datetime.combine(day, self.start, tzinfo=zone))
                close_day = day if self.end > self.start else day + dt.timedelta(days=1)
                closes = _wall(dt.datetime.combine(close_day, self.end, tzinfo=zone))
                if opens < end and closes > start:
                    found.append((opens.astimezone(dt.UTC), closes.astimezone(dt.UTC)))
            day += dt.timedelta(days=1)
        return found


def _wall(moment):
    """A wall-clock time that does not exist (in the hour skipped in spring) is read with the offset before the
    gap, as RFC 5545 does (02:30 becomes 03:30); an ambiguous one (the hour repeated in autumn) is its first
    occurrence."""
    utc = moment.astimezone(dt.UTC)
    back = utc.astimezone(moment.tzinfo)
    if back.replace(tzinfo=None) != moment.replace(tzinfo=None):  # skipped: normalise through UTC
        return back
    return moment


@dataclass(frozen=True)
class Freeze:
    reason: str
    start: dt.datetime | None = None  # one-off
    end: dt.datetime | None = None
    rule: str = ""  # recurring: an RRULE, e.g. "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=20"
    first: dt.datetime | None = None  # the recurring rule's DTSTART (local wall time in tz)
    minutes: int = 0
    tz: str = "UTC"

    def periods(self, start, end):
        """The freeze's periods (from, to) in UTC that overlap [start, end)."""
        if not self.rule:
            if self.start and self.end and self.start < end and self.end > start:
                return [(self.start.astimezone(dt.UTC), self.end.astimezone(dt.UTC))]
            return []
        zone = ZoneInfo(self.tz)
        first = (self.first or start).astimezone(zone).replace(tzinfo=None)
        length = dt.timedelta(minutes=self.minutes)
        rule = rrule.rrulestr(self.rule, dtstart=first)
        found = []
        window_start = (start - length).astimezone(zone).replace(tzinfo=None)
        for occurrence in rule.between(window_start, end.astimezone(zone).replace(tzinfo=None), inc=True):
            begins = _wall(occurrence.replace(tzinfo=zone)).astimezone(dt.UTC)
            ends = _wall((occurrence + length).replace(tzinfo=zone)).astimezone(dt.UTC)
            if begins < end and ends > start:
                found.append((begins, ends))
            if len(found) > 1000:
                break
        return found

    def overlaps(self, start, end):
        return bool(self.periods(start, end))


def rule_problem(rule):
    """What is wrong with a recurrence rule (None: it parses)."""
    try:
        rrule.rrulestr(rule, dtstart=dt.datetime(2026, 1, 1))
    except (ValueError, TypeError) as exc:
        return f"not an RFC 5545 recurrence rule: {exc}"
    return None


def check(*, start, end, windows, freezes):
    """(refusals, window): why [start, end) may not be scheduled (empty: it may), naming the freeze that holds
    it or the windows it misses; and the window it fits."""
    refusals = []
    held = [f for f in freezes if f.overlaps(start, end)]
    for freeze in held:
        periods = freeze.periods(start, end)
        refusals.append(f"inside the freeze '{freeze.reason}' ({periods[0][0]:%Y-%m-%d %H:%M} – "
                        f"{periods[0][1]:%Y-%m-%d %H:%M} UTC)")
    fitting = next((w for w in windows if w.contains(start, end)), None)
    if windows and fitting is None:
        refusals.append("outside every deployment window: " + "; ".join(w.describe() for w in windows))
    return refusals, fitting


def overlapping(spans):
    """Pairs (i, j) of spans [(start, end)] that overlap (i < j): scheduling conflicts."""
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    pairs = []
    for a, i in enumerate(order):
        for j in order[a + 1:]:
            if spans[j][0] >= spans[i][1]:
                break
            pairs.append((min(i, j), max(i, j)))
    return pairs
