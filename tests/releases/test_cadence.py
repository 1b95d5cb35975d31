"""Release cadence (releases/cadence.py, pure)."""
import datetime as dt

from releases import cadence


def test_cadence_status__patch_shipped_ten_days_ago__overdue_by_three():
    today = dt.date(2026, 11, 26)
    s = cadence.status("patch", last_shipped=today - dt.timedelta(days=10), next_planned=None, today=today)
    assert s.overdue and s.overdue_days == 3 and s.due == dt.date(2026, 11, 23)


def test_cadence_status__minor_within_month__on_track():
    today = dt.date(2026, 11, 26)
    s = cadence.status("minor", last_shipped=today - dt.timedelta(days=10), next_planned=None, today=today)
    assert not s.overdue


def test_cadence_status__hotfix__never_due():
    s = cadence.status("hotfix", last_shipped=None, next_planned=None, today=dt.date(2026, 1, 1))
    assert not s.overdue and s.due is None


def test_month_grid__entries__placed_on_their_day():
    grid = cadence.month_grid(2026, 11, [(dt.date(2026, 11, 26), "r1")])
    cells = {day: items for week in grid for day, items in week if day}
    assert cells[dt.date(2026, 11, 26)] == ["r1"] and len(cells) == 30
