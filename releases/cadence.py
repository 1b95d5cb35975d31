"""The seed's release cadence: what is due when, and which types are overdue (no Django import)."""
import calendar
import datetime as dt
from dataclasses import dataclass

# Expected interval between releases of a type; hotfixes ship as needed.
CADENCE = {
    "major": dt.timedelta(days=91),  # quarterly
    "minor": dt.timedelta(days=30),  # monthly
    "patch": dt.timedelta(days=7),  # weekly
    "hotfix": None,
}
CADENCE_LABEL = {"major": "quarterly", "minor": "monthly", "patch": "weekly", "hotfix": "as needed"}


@dataclass(frozen=True)
class CadenceStatus:
    release_type: str
    label: str
    last_shipped: dt.date | None
    next_planned: dt.date | None
    due: dt.date | None
    overdue: bool
    overdue_days: int


def status(release_type, *, last_shipped, next_planned, today):
    """Cadence status of one type: overdue when nothing shipped and nothing is planned by the due date."""
    interval = CADENCE[release_type]
    if interval is None:
        return CadenceStatus(release_type, CADENCE_LABEL[release_type], last_shipped, next_planned, None, False, 0)
    due = (last_shipped + interval) if last_shipped else today
    # Shipped before: overdue once the interval has passed. Never shipped: overdue while nothing is planned.
    overdue = today > due if last_shipped else next_planned is None
    days = (today - due).days if overdue and last_shipped else 0
    return CadenceStatus(release_type, CADENCE_LABEL[release_type], last_shipped, next_planned, due, overdue, days)


def month_grid(year, month, entries):
    """Weeks of (date or None, [entries on that date]) for a month; entries are (date, item) pairs."""
    by_day = {}
    for day, item in entries:
        by_day.setdefault(day, []).append(item)
    weeks = []
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        weeks.append([(d if d.month == month else None, by_day.get(d, []) if d.month == month else [])
                      for d in week])
    return weeks
