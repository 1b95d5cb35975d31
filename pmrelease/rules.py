"""Rule arithmetic for rollback triggers and alert rules (pure: no Django, no I/O).

A rule compares a metric with a threshold (``> < >= <= == !=``) and fires only when the breach was
**sustained**: every sample of the provider's series over the whole last ``duration`` seconds breaches, and
the samples cover that window (a series that starts late, or has a hole wider than allowed, is not proof of
a sustained breach). A single spike never fires. After firing, a rule stays silent for ``cooldown`` seconds.
With no data the rule's no-data policy decides: ``hold`` (record, do nothing), ``alert``, or ``breach``.
A baseline comparison (``compare="stable"``) judges the ratio (or difference) of the new version's series to
the stable version's, point by point in time.
"""
import math
import operator
from dataclasses import dataclass

OPERATORS = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le, "==": operator.eq,
             "!=": operator.ne}
NO_DATA_POLICIES = ("hold", "alert", "breach")
COMPARE_MODES = ("ratio", "difference")

# Decisions, as recorded for every evaluation.
OK, BREACHING, FIRED, NO_DATA, ERROR, COOLING_DOWN = "ok", "breaching", "fired", "no_data", "error", "cooling_down"
DECISIONS = (OK, BREACHING, FIRED, NO_DATA, ERROR, COOLING_DOWN)


@dataclass(frozen=True)
class Rule:
    metric: str
    operator: str
    threshold: float
    duration: float = 0.0  # seconds the breach must last (0: the latest sample decides)
    cooldown: float = 0.0  # seconds before the rule may fire again
    no_data: str = "hold"
    compare: str = ""  # "" or "stable"
    compare_mode: str = "ratio"

    def describe(self):
        what = f"{self.metric}" if not self.compare else f"{self.metric} ({self.compare_mode} to {self.compare})"
        return f"{what} {self.operator} {self.threshold:g}" + (f" for {self.duration:g} s" if self.duration else "")


@dataclass(frozen=True)
class Verdict:
    decision: str
    value: float | None = None  # the latest judged value
    detail: str = ""
    breach_since: float | None = None  # when the current breach began (seconds, the samples' clock)

    @property
    def fires(self):
        return self.decision == FIRED


def problems(*, metric, operator, threshold, duration=0, cooldown=0, no_data="hold", compare="",
             compare_mode="ratio"):
    """What is wrong with a rule's fields, as messages (empty: valid)."""
    found = []
    if not isinstance(metric, str) or not metric.strip() or len(metric) > 100:
        found.append("metric: a metric name is required")
    if operator not in OPERATORS:
        found.append(f"operator: one of {' '.join(OPERATORS)}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        found.append("threshold: a finite number")
    for name, value, high in (("duration", duration, 7 * 86400), ("cooldown", cooldown, 7 * 86400)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
            found.append(f"{name}: seconds from 0 to {high}")
    if no_data not in NO_DATA_POLICIES:
        found.append(f"no_data: one of {', '.join(NO_DATA_POLICIES)}")
    if compare not in ("", "stable"):
        found.append('compare: "" or "stable"')
    if compare_mode not in COMPARE_MODES:
        found.append(f"compare_mode: one of {', '.join(COMPARE_MODES)}")
    return found


def breaches(rule, value):
    return value is not None and math.isfinite(value) and OPERATORS[rule.operator](value, rule.threshold)


def relative(series, baseline, mode="ratio"):
    """The new version's series judged against the stable one's: at each time of ``series`` the ratio (or
    difference) to the latest baseline sample at or before it. Points with no baseline yet, or a zero
    baseline for a ratio, are left out (they prove nothing)."""
    base = sorted(baseline)
    out = []
    j = -1
    for at, value in sorted(series):
        while j + 1 < len(base) and base[j + 1][0] <= at:
            j += 1
        if j < 0:
            continue
        reference = base[j][1]
        if mode == "difference":
            out.append((at, value - reference))
        elif reference:
            out.append((at, value / reference))
        elif value == 0:
            out.append((at, 1.0))  # both zero: no worse than the stable version
    return out


def sustained_breach(rule, samples, *, now, step):
    """(sustained, since): did every sample over the last ``rule.duration`` seconds breach, with samples
    covering the window? The series' resolution is ``step`` seconds: samples may be up to two steps apart (one
    missed scrape), the run of breaching samples must begin no later than the window opens (a breach seen for
    less than ``duration`` is not sustained, whatever happened before its first sample), and the last sample be
    at most two steps old. ``since`` is when the trailing run of breaching samples began."""
    max_gap = 2 * step
    points = sorted((at, v) for at, v in samples if at <= now)
    if not points or not breaches(rule, points[-1][1]):
        return False, None
    run_start = len(points) - 1
    while run_start > 0 and breaches(rule, points[run_start - 1][1]) and \
            points[run_start][0] - points[run_start - 1][0] <= max_gap:
        run_start -= 1
    since = points[run_start][0]
    if now - points[-1][0] > max_gap:
        return False, since  # the series stopped: stale data proves nothing about now
    if rule.duration <= 0:
        return True, since
    return since <= now - rule.duration + 1e-9, since


def judge(rule, samples, *, now, step, last_fired_at=None, baseline=None, error=None):
    """The verdict for one rule at ``now`` (seconds on the samples' clock).

    ``samples`` [(at, value)] cover at least the last ``rule.duration`` seconds (more is fine) at a resolution
    of ``step`` seconds; ``baseline`` the stable version's series for ``compare="stable"``; ``error`` a
    provider's failure (recorded, never a pass).
    """
    max_gap = 2 * step
    if error:
        return Verdict(ERROR, detail=str(error)[:500])
    series = list(samples or [])
    if rule.compare:
        if not baseline:
            series = []
        else:
            series = relative(series, baseline, rule.compare_mode)
    window = [(at, v) for at, v in series if at >= now - max(rule.duration, 0) - max_gap and at <= now]
    if not window:
        what = "no samples" if not rule.compare else "no samples of the new or the stable version"
        detail = f"{what} over the last {max(rule.duration, max_gap):g} s"
        if rule.no_data == "breach":
            return _fire_or_cool(rule, None, now, last_fired_at, f"{detail}: the no-data policy is 'breach'")
        return Verdict(NO_DATA, detail=f"{detail} (no-data policy: {rule.no_data})")
    latest = window[-1][1]
    ok, since = sustained_breach(rule, window, now=now, step=step)
    if ok:
        return _fire_or_cool(rule, latest, now, last_fired_at,
                             f"{rule.describe()}: breached since {now - since:g} s ago", since)
    if breaches(rule, latest):
        lasted = now - since if since is not None else 0
        return Verdict(BREACHING, latest, f"{rule.describe()}: breaching for {lasted:g} s, not yet sustained", since)
    return Verdict(OK, latest, f"{rule.metric} = {latest:g}")


def cooling_down(rule, now, last_fired_at):
    return last_fired_at is not None and now - last_fired_at < rule.cooldown


def _fire_or_cool(rule, value, now, last_fired_at, detail, since=None):
    if cooling_down(rule, now, last_fired_at):
        left = rule.cooldown - (now - last_fired_at)
        return Verdict(COOLING_DOWN, value, f"{detail}; fired {now - last_fired_at:g} s ago, silent for {left:g} s "
                                            "more (cooldown)", since)
    return Verdict(FIRED, value, detail, since)


# --- alert rules: inactive → pending (held for ``for``) → firing → resolved, notifications within the cooldown ---
INACTIVE, PENDING, FIRING = "inactive", "pending", "firing"
ALERT_STATES = (INACTIVE, PENDING, FIRING)


@dataclass(frozen=True)
class AlertStep:
    """What one evaluation does to an alert: its next state, when that state began, whether a notification
    goes out (``notify``: "firing", "resolved" or ""), and the change to record ("" when nothing changed)."""

    state: str
    since: float | None
    notify: str = ""
    change: str = ""  # "pending", "firing", "resolved", "cleared" (pending → inactive)
    suppressed: str = ""  # a notification the cooldown held back: "firing" or "resolved"


def alert_step(*, state, since, matched, now, hold=0.0, cooldown=0.0, last_notified=None):
    """The pure transition of an alert rule after one evaluation. ``matched``: the condition returned a
    non-empty result; ``hold``: seconds it must keep matching before the alert fires (Prometheus' ``for``);
    ``cooldown``: seconds that must pass between two notifications of the rule (firing or resolved)."""
    cooled = last_notified is None or now - last_notified >= cooldown

    def notify(kind, new_state, new_since, change):
        if cooled:
            return AlertStep(new_state, new_since, notify=kind, change=change)
        return AlertStep(new_state, new_since, change=change, suppressed=kind)

    if matched:
        if state == FIRING:
            return AlertStep(FIRING, since)
        if state == PENDING and since is not None and now - since >= hold:
            return notify("firing", FIRING, now, "firing")
        if state == PENDING:
            return AlertStep(PENDING, since)
        if hold <= 0:
            return notify("firing", FIRING, now, "firing")
        return AlertStep(PENDING, now, change="pending")
    if state == FIRING:
        return notify("resolved", INACTIVE, now, "resolved")
    if state == PENDING:
        return AlertStep(INACTIVE, now, change="cleared")
    return AlertStep(INACTIVE, since)
