"""Windows, freezes and conflicts as pure arithmetic: time zones, daylight-saving changes, overnight windows,
recurring freezes."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from changes import risk, schedule

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC
TUE_THU = schedule.Window(name="Business hours", days=(1, 2, 3), start=dt.time(10), end=dt.time(16),
                          tz="Europe/Berlin")


def at(*args, tz=UTC):
    return dt.datetime(*args, tzinfo=tz)


@pytest.mark.parametrize("moment, inside", [
    (at(2026, 12, 1, 9, 0), True),  # Tuesday 10:00 in Berlin (UTC+1 in winter)
    (at(2026, 12, 1, 8, 59), False),  # 09:59 Berlin
    (at(2026, 12, 1, 14, 59), True),  # 15:59 Berlin
    (at(2026, 12, 1, 15, 0), False),  # 16:00 Berlin: closed
    (at(2026, 12, 4, 10, 0), False),  # Friday
    (at(2026, 7, 7, 8, 0), True),  # Tuesday 10:00 in Berlin in summer is 08:00 UTC (UTC+2)
    (at(2026, 7, 7, 14, 30), False),  # 16:30 Berlin in summer
    (at(2026, 12, 1, 10, 0, tz=BERLIN), True),  # the same instant given in local time
])
def test_window__instants_in_utc__compared_on_the_local_wall_clock(moment, inside):
    assert (TUE_THU.occurrence(moment) is not None) is inside


def test_window__across_the_spring_dst_change__opens_at_10_local_both_weeks():
    """Europe/Berlin moves to summer time on Sunday 29 March 2026: the Tuesday before opens at 09:00 UTC,
    the Tuesday after at 08:00 UTC."""
    before = TUE_THU.occurrence(at(2026, 3, 24, 9, 30))
    after = TUE_THU.occurrence(at(2026, 3, 31, 8, 30))
    assert before == (at(2026, 3, 24, 9, 0), at(2026, 3, 24, 15, 0))
    assert after == (at(2026, 3, 31, 8, 0), at(2026, 3, 31, 14, 0))
    assert TUE_THU.occurrence(at(2026, 3, 31, 7, 30)) is None  # 09:30 local: not yet open


def test_window__on_the_night_of_the_dst_change__skipped_and_repeated_hours():
    night = schedule.Window(name="Night", days=(6,), start=dt.time(2, 30), end=dt.time(4), tz="Europe/Berlin")
    # spring: 02:30 does not exist on 29 March 2026; as in RFC 5545 it is read with the offset before the gap,
    # so the window opens at 03:30 CEST (01:30 UTC) and keeps its 04:00 close
    opens, closes = night.occurrence(at(2026, 3, 29, 1, 45))
    assert opens == at(2026, 3, 29, 1, 30) and closes == at(2026, 3, 29, 2, 0)
    # autumn: 02:30 happens twice on 25 October 2026; the window opens at the first (CEST, 00:30 UTC)
    opens, closes = night.occurrence(at(2026, 10, 25, 0, 45))
    assert opens == at(2026, 10, 25, 0, 30) and closes == at(2026, 10, 25, 3, 0)


def test_window__overnight__contains_spans_past_midnight():
    night = schedule.Window(name="Night", days=(4,), start=dt.time(22), end=dt.time(2), tz="UTC")  # Friday 22–02
    assert night.contains(at(2026, 12, 4, 23, 0), at(2026, 12, 5, 1, 30))
    assert night.occurrence(at(2026, 12, 5, 1, 0)) == (at(2026, 12, 4, 22), at(2026, 12, 5, 2))
    assert not night.contains(at(2026, 12, 4, 23, 0), at(2026, 12, 5, 2, 30))  # runs past the close
    assert night.occurrence(at(2026, 12, 6, 1, 0)) is None  # Saturday night: no window


def test_window__midnight_to_midnight_every_day__always_open():
    always = schedule.Window(name="24x7", days=tuple(range(7)), start=dt.time(0), end=dt.time(0), tz="Europe/Berlin")
    for hour in range(0, 24 * 7, 5):
        assert always.occurrence(at(2026, 12, 1) + dt.timedelta(hours=hour)) is not None


def test_window__occurrences__each_in_range_once():
    found = TUE_THU.occurrences(at(2026, 11, 30), at(2026, 12, 7))
    assert [o[0] for o in found] == [at(2026, 12, 1, 9), at(2026, 12, 2, 9), at(2026, 12, 3, 9)]


def test_freeze__one_off__overlap_only_when_periods_intersect():
    freeze = schedule.Freeze(reason="Launch", start=at(2026, 12, 10, 6), end=at(2026, 12, 12, 6))
    assert freeze.overlaps(at(2026, 12, 12, 5), at(2026, 12, 12, 7))
    assert not freeze.overlaps(at(2026, 12, 12, 6), at(2026, 12, 12, 7))  # starts when it ends
    assert not freeze.overlaps(at(2026, 12, 9), at(2026, 12, 10, 6))


def test_freeze__recurring_yearly_in_berlin__every_year_at_local_midnight():
    freeze = schedule.Freeze(reason="Year end", rule="FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=23",
                             first=at(2025, 12, 23, 0, 0, tz=BERLIN), minutes=10 * 24 * 60, tz="Europe/Berlin")
    periods = freeze.periods(at(2026, 1, 1), at(2028, 1, 1))
    assert periods[0] == (at(2025, 12, 22, 23), at(2026, 1, 1, 23))  # last year's, running into 2026
    assert periods[1] == (at(2026, 12, 22, 23), at(2027, 1, 1, 23))
    assert len(periods) == 3
    assert freeze.overlaps(at(2026, 12, 30, 12), at(2026, 12, 30, 13))
    assert not freeze.overlaps(at(2026, 12, 22, 22), at(2026, 12, 22, 23))


def test_freeze__weekly_across_dst__local_start_kept():
    fridays = schedule.Freeze(reason="Friday afternoons", rule="FREQ=WEEKLY;BYDAY=FR",
                              first=at(2026, 3, 20, 15, 0, tz=BERLIN), minutes=9 * 60, tz="Europe/Berlin")
    winter, summer = fridays.periods(at(2026, 3, 20), at(2026, 3, 28))
    assert winter[0] == at(2026, 3, 20, 14)  # 15:00 CET
    assert summer[0] == at(2026, 3, 27, 14)  # still CET (the change is on the 29th)
    after = fridays.periods(at(2026, 4, 3), at(2026, 4, 4))[0]
    assert after[0] == at(2026, 4, 3, 13)  # 15:00 CEST


def test_check__inside_freeze_and_outside_windows__both_named():
    freeze = schedule.Freeze(reason="Campaign peak", start=at(2026, 12, 1), end=at(2026, 12, 2))
    refusals, window = schedule.check(start=at(2026, 12, 1, 18), end=at(2026, 12, 1, 19), windows=[TUE_THU],
                                      freezes=[freeze])
    assert window is None
    assert "Campaign peak" in refusals[0]
    assert "outside every deployment window: Business hours (Tue, Wed, Thu 10:00–16:00 Europe/Berlin)" in refusals[1]


def test_check__no_windows_defined__any_time_outside_freezes():
    assert schedule.check(start=at(2026, 12, 5, 3), end=at(2026, 12, 5, 4), windows=[], freezes=[]) == ([], None)


def test_check__span_running_past_the_window__refused():
    refusals, _ = schedule.check(start=at(2026, 12, 1, 14, 30), end=at(2026, 12, 1, 15, 30), windows=[TUE_THU],
                                 freezes=[])
    assert refusals and "outside every deployment window" in refusals[0]


def test_overlapping__pairs_of_intersecting_spans():
    spans = [(at(2026, 12, 1, 10), at(2026, 12, 1, 11)), (at(2026, 12, 1, 10, 30), at(2026, 12, 1, 12)),
             (at(2026, 12, 1, 11), at(2026, 12, 1, 11, 15)), (at(2026, 12, 1, 13), at(2026, 12, 1, 14))]
    assert schedule.overlapping(spans) == [(0, 1), (1, 2)]


def test_rule_problem__garbage__named():
    assert schedule.rule_problem("FREQ=SOMETIMES") is not None
    assert schedule.rule_problem("FREQ=YEARLY;BYMONTH=12") is None


@pytest.mark.parametrize("impact, likelihood, prod, envs, level", [
    ("none", "high", 0, 1, "low"),
    ("low", "low", 0, 1, "low"),
    ("medium", "medium", 0, 1, "medium"),
    ("high", "high", 0, 1, "critical"),
    ("low", "low", 1, 1, "medium"),  # production: at least medium
    ("low", "low", 2, 2, "high"),  # two production environments: at least high
    ("low", "low", 0, 4, "high"),  # four environments at once
    ("system_wide", "low", 0, 1, "high"),
])
def test_risk__matrix_and_environments__level_with_reasons(impact, likelihood, prod, envs, level):
    got, reasons = risk.assess(impact=impact, likelihood=likelihood, production_tiers=prod, environments=envs)
    assert got == level
    assert reasons[0].startswith(f"{impact} impact × {likelihood} likelihood")


def test_risk__effective__raised_never_lowered():
    assert risk.effective("medium", "high") == "high"
    assert risk.effective("high", "low") == "high"
    assert risk.effective("medium", "") == "medium"
    with pytest.raises(ValueError):
        risk.assess(impact="huge", likelihood="low")
