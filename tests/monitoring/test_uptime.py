"""Uptime arithmetic (pure): day boundaries, overlapping incidents, windows, DST."""
import datetime as dt
import zoneinfo

import pytest

from monitoring.statuspage import status as st
from monitoring.statuspage import uptime
from monitoring.statuspage.uptime import Interval

UTC = dt.UTC


def t(day, hour=0, minute=0, tz=UTC):
    return dt.datetime(2025, 3, day, hour, minute, tzinfo=tz)


def test_intervals_from_changes__unsorted_changes__consecutive_intervals_until_now():
    changes = [(t(2, 12), st.MAJOR), (t(1), st.OPERATIONAL), (t(2, 13), st.OPERATIONAL)]
    result = uptime.intervals_from_changes(changes, until=t(3))
    assert result == [Interval(t(1), t(2, 12), st.OPERATIONAL), Interval(t(2, 12), t(2, 13), st.MAJOR),
                      Interval(t(2, 13), t(3), st.OPERATIONAL)]


def test_uptime_percent__one_hour_major_outage_in_a_day__95_83():
    intervals = uptime.intervals_from_changes([(t(1), st.OPERATIONAL), (t(1, 10), st.MAJOR),
                                               (t(1, 11), st.OPERATIONAL)], until=t(2))
    assert uptime.uptime_percent(intervals, t(1), t(2)) == pytest.approx(100 * 23 / 24, abs=1e-3)


def test_uptime_percent__partial_outage__weighted_30_percent():
    intervals = [Interval(t(1), t(2), st.OPERATIONAL), Interval(t(1, 0), t(1, 10), st.PARTIAL)]
    assert uptime.uptime_percent(intervals, t(1), t(2)) == pytest.approx(100 * (1 - 3 / 24), abs=1e-3)


def test_uptime_percent__degraded_and_maintenance__count_as_up():
    intervals = [Interval(t(1), t(1, 12), st.DEGRADED), Interval(t(1, 12), t(2), st.MAINTENANCE)]
    assert uptime.uptime_percent(intervals, t(1), t(2)) == 100.0


def test_days__outage_across_midnight__split_between_both_days():
    # 23:00 on the 1st to 01:00 on the 2nd: one hour of major outage on each day.
    intervals = uptime.intervals_from_changes([(t(1), st.OPERATIONAL), (t(1, 23), st.MAJOR),
                                               (t(2, 1), st.OPERATIONAL)], until=t(4))
    days = uptime.days(intervals, today=dt.date(2025, 3, 3), count=3, tz=UTC, now=t(4),
                       incidents=[(t(1, 23), t(2, 1), "Night outage")])
    assert [d.date.day for d in days] == [1, 2, 3]
    assert [d.status for d in days] == [st.MAJOR, st.MAJOR, st.OPERATIONAL]
    assert days[0].uptime == pytest.approx(100 * 23 / 24, abs=1e-3)
    assert days[1].uptime == pytest.approx(100 * 23 / 24, abs=1e-3)
    assert days[0].incidents == ["Night outage"] and days[1].incidents == ["Night outage"]
    assert days[2].incidents == [] and days[2].uptime == 100.0


def test_flatten__overlapping_incidents__worst_status_wins_and_downtime_not_double_counted():
    # Incident A: major 10:00-12:00; incident B: partial 11:00-14:00 on the same component.
    base = Interval(t(1), t(2), st.OPERATIONAL)
    a = Interval(t(1, 10), t(1, 12), st.MAJOR)
    b = Interval(t(1, 11), t(1, 14), st.PARTIAL)
    flat = uptime.flatten([base, a, b])
    assert [(i.start.hour, i.end.hour if i.end.day == 1 else 24, i.status) for i in flat] == [
        (0, 10, st.OPERATIONAL), (10, 12, st.MAJOR), (12, 14, st.PARTIAL), (14, 24, st.OPERATIONAL)]
    down = uptime.downtime_seconds([base, a, b], t(1), t(2))
    assert down == pytest.approx(2 * 3600 + 0.3 * 2 * 3600)
    assert uptime.uptime_percent([base, a, b], t(1), t(2)) == pytest.approx(100 * (1 - 2.6 / 24), abs=1e-3)


def test_uptime_percent__component_younger_than_window__only_its_lifetime_counts():
    intervals = [Interval(t(10, 0), t(10, 12), st.OPERATIONAL), Interval(t(10, 12), t(11), st.MAJOR)]
    assert uptime.uptime_percent(intervals, t(1), t(11)) == 50.0
    assert uptime.uptime_percent(intervals, t(1), t(5)) is None


def test_days__before_component_existed__no_data_cells():
    intervals = [Interval(t(3, 12), t(4), st.OPERATIONAL)]
    days = uptime.days(intervals, today=dt.date(2025, 3, 3), count=3, tz=UTC, now=t(4))
    assert [d.has_data for d in days] == [False, False, True]


def test_days__dst_change_day__23_hour_day_in_local_time():
    tz = zoneinfo.ZoneInfo("Europe/Paris")  # 30 March 2025: clocks go forward, the day has 23 hours
    start, end = uptime.day_bounds(dt.date(2025, 3, 30), tz)
    assert (end - start) == dt.timedelta(hours=23)
    outage = Interval(start, start + dt.timedelta(hours=23), st.MAJOR)
    days = uptime.days([outage], today=dt.date(2025, 3, 30), count=1, tz=tz, now=end)
    assert days[0].uptime == 0.0


def test_window_uptimes__outage_yesterday__24h_clean_7d_not():
    now = t(10)
    intervals = uptime.intervals_from_changes([(t(1), st.OPERATIONAL), (t(8, 10), st.MAJOR),
                                               (t(8, 16), st.OPERATIONAL)], until=now)
    result = uptime.window_uptimes(intervals, now=now)
    assert result["24h"] == 100.0
    assert result["7d"] == pytest.approx(100 * (1 - 6 / (7 * 24)), abs=1e-3)


@pytest.mark.parametrize("value,text", [(100.0, "100.00%"), (99.999, "99.99%"), (99.9049, "99.90%"),
                                        (None, "no data")])
def test_format_percent__values__never_rounds_an_outage_up_to_100(value, text):
    assert uptime.format_percent(value) == text


@pytest.mark.parametrize("components,impacts,maintenance,expected", [
    ([st.OPERATIONAL], [], False, "none"),
    ([st.OPERATIONAL, st.MAINTENANCE], [], True, "maintenance"),
    ([st.DEGRADED], [], False, "minor"),
    ([st.PARTIAL, st.DEGRADED], ["minor"], False, "major"),
    ([st.OPERATIONAL], ["critical"], True, "critical"),
])
def test_indicator__inputs__worst_wins(components, impacts, maintenance, expected):
    value, description = st.indicator(component_statuses=components, incident_impacts=impacts,
                                      maintenance_active=maintenance)
    assert value == expected and description == st.INDICATOR_DESCRIPTIONS[expected]
