"""Service level objectives, error budgets and burn rates (pure: no Django, no I/O).

An SLO says which fraction of events (or of time) must be good over a rolling window: ``objective`` 0.999 over
30 days leaves an **error budget** of 0.1 % of that window. The error ratio of any span comes from the SLI's
source (``ratio(start, end) -> (bad, total)`` or None without events).

- **Remaining budget**: ``1 - error_ratio(window) / (1 - objective)`` (1: untouched, 0: spent, below 0: over).
- **Burn rate** of a span: ``error_ratio(span) / (1 - objective)``; 1 spends the budget exactly over the window.
- **Multiwindow, multi-burn-rate alerts** (the Google SRE workbook, "Alerting on SLOs", table 5-8): each alert
  has a long and a short window and fires while *both* burn faster than the rate that would spend the named
  fraction of the budget in the long window — for a 30-day SLO: 2 % in 1 h (14.4, page, short window 5 min),
  5 % in 6 h (6, page, 30 min), 10 % in 1 day (3, ticket, 2 h), 10 % in 3 days (1, ticket, 6 h). For other
  windows the thresholds follow from the same fractions (``threshold``).
"""
import datetime as dt
from dataclasses import dataclass, field

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class BurnRateAlert:
    severity: str  # page | ticket
    long: dt.timedelta
    short: dt.timedelta
    budget_fraction: float  # of the whole budget, spent in ``long`` at the threshold rate


ALERTS = (
    BurnRateAlert("page", HOUR, 5 * MINUTE, 0.02),
    BurnRateAlert("page", 6 * HOUR, 30 * MINUTE, 0.05),
    BurnRateAlert("ticket", 24 * HOUR, 2 * HOUR, 0.10),
    BurnRateAlert("ticket", 72 * HOUR, 6 * HOUR, 0.10),
)


def threshold(alert, window):
    """The burn rate that spends ``alert.budget_fraction`` of a ``window``-long SLO's budget in ``alert.long``."""
    return alert.budget_fraction * (window / alert.long)


def problems(*, objective, window_days):
    found = []
    if isinstance(objective, bool) or not isinstance(objective, int | float) or not 0 < objective < 100:
        found.append("objective: a percentage above 0 and below 100, e.g. 99.9")
    if isinstance(window_days, bool) or not isinstance(window_days, int) or not 1 <= window_days <= 90:
        found.append("window_days: whole days from 1 to 90")
    return found


@dataclass
class AlertState:
    alert: BurnRateAlert
    threshold: float
    long_burn_rate: float | None
    short_burn_rate: float | None

    @property
    def firing(self):
        limit = self.threshold * (1 - 1e-9)  # at the threshold fires, whatever the floating-point rounding
        return (self.long_burn_rate is not None and self.short_burn_rate is not None
                and self.long_burn_rate >= limit and self.short_burn_rate >= limit)

    def as_dict(self):
        return {"severity": self.alert.severity, "long_window_seconds": self.alert.long.total_seconds(),
                "short_window_seconds": self.alert.short.total_seconds(),
                "budget_fraction": self.alert.budget_fraction, "threshold": round(self.threshold, 6),
                "long_burn_rate": _round(self.long_burn_rate), "short_burn_rate": _round(self.short_burn_rate),
                "firing": self.firing}


@dataclass
class Status:
    objective: float  # a fraction, e.g. 0.999
    window: dt.timedelta
    good: float | None = None
    total: float | None = None
    sli: float | None = None  # good ÷ total over the window
    error_budget: float = 0.0  # 1 - objective
    budget_remaining: float | None = None
    burn_rates: dict = field(default_factory=dict)  # span seconds → burn rate (None: no events)
    alerts: list = field(default_factory=list)

    @property
    def firing(self):
        return [a for a in self.alerts if a.firing]

    def as_dict(self):
        return {"objective": round(self.objective, 9), "window_seconds": self.window.total_seconds(),
                "sli": _round(self.sli), "good": self.good, "total": self.total,
                "error_budget": round(self.error_budget, 9), "budget_remaining": _round(self.budget_remaining),
                "burn_rates": {str(int(k)): _round(v) for k, v in sorted(self.burn_rates.items())},
                "alerts": [a.as_dict() for a in self.alerts]}


def _round(value):
    return None if value is None else round(value, 6)


def evaluate(*, objective_percent, window, ratio, now):
    """The SLO's status at ``now``: ``ratio(start, end)`` gives ``(bad, total)`` of a span, or None."""
    objective = objective_percent / 100.0
    budget = (100.0 - objective_percent) / 100.0  # not 1 - objective: 1 - 0.99 is 0.010000000000000009
    status = Status(objective=objective, window=window, error_budget=budget)

    def error_ratio(span):
        counted = ratio(now - span, now)
        if counted is None:
            return None
        bad, total = counted
        return bad / total if total > 0 else None

    counted = ratio(now - window, now)
    if counted is not None and counted[1] > 0:
        bad, total = counted
        status.good, status.total = total - bad, total
        status.sli = (total - bad) / total
        status.budget_remaining = 1.0 - (bad / total) / budget
    spans = sorted({a.long for a in ALERTS} | {a.short for a in ALERTS})
    rates = {}
    for span in spans:
        found = error_ratio(span)
        rates[span] = None if found is None else found / budget
    status.burn_rates = {span.total_seconds(): rate for span, rate in rates.items()}
    status.alerts = [AlertState(a, threshold(a, window), rates[a.long], rates[a.short]) for a in ALERTS]
    return status
