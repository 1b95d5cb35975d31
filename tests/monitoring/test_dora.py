"""DORA arithmetic (monitoring.dora) on a history worked out by hand, tier boundaries included."""
import datetime as dt

import pytest

from monitoring import dora

UTC = dt.UTC


def at(day, hour=0, minute=0, month=3):
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


# March 2026 (31 days), by hand:
#  1 succeeded, release created 09:45 → succeeded 10:30: lead 45 min
#  2 succeeded, change submitted the day before at 12:00 → 12:00: lead 24 h (from a change request)
#  3 rolled back automatically, rollback 10:00 → 10:20 (20 min), no incident
#  4 succeeded, lead 2 h; an incident linked to it, 16:00 → 18:00 (2 h)
#  5 failed (halted, not rolled back)
#  6 cancelled: counts nowhere
#  7 succeeded, lead 3 h
# incidents not linked: 28th 00:00 → 00:30 (30 min); 29th unresolved; one in February (outside)
HISTORY = [
    dora.Deployment(1, at(2, 10), "succeeded", at(2, 10, 30), at(2, 9, 45)),
    dora.Deployment(2, at(5, 11), "succeeded", at(5, 12), at(4, 12), change_source="change"),
    dora.Deployment(3, at(10, 9), "rolled_back", None, at(9), automatic_rollback=True,
                    rollback_started_at=at(10, 10), rollback_finished_at=at(10, 10, 20)),
    dora.Deployment(4, at(12, 14), "succeeded", at(12, 15), at(12, 13)),
    dora.Deployment(5, at(20, 9), "failed", None, at(19)),
    dora.Deployment(6, at(22, 9), "cancelled", None, at(21)),
    dora.Deployment(7, at(25, 9), "succeeded", at(25, 12), at(25, 9)),
]
INCIDENTS = [
    dora.Incident(1, at(12, 16), at(12, 18), deployment_id=4),
    dora.Incident(2, at(28), at(28, 0, 30)),
    dora.Incident(3, at(29)),
    dora.Incident(4, at(20, month=2), at(21, month=2)),
]


def test_keys__hand_built_month__match_the_hand_worked_values():
    march, april = dora.report("month", at(10, 12, month=4), 2, HISTORY, INCIDENTS)

    assert march.period.label == "2026-03" and march.period.days == 31
    # deployment frequency: 1, 2, 4, 7 succeeded → 4 in 31 days; at least monthly, less than daily: high
    assert march.deployments == 4
    assert march.per_day == pytest.approx(4 / 31)
    assert march.tiers["deployment_frequency"] == "high"
    # lead time: 45 min, 24 h, 2 h, 3 h → median of 2 h and 3 h = 2.5 h (9000 s): under a week, high
    assert march.lead_time == 9000
    assert (march.lead_time_samples, march.lead_time_from_changes) == (4, 1)
    assert march.tiers["lead_time"] == "high"
    # change failure rate: 3 (rolled back), 4 (incident), 5 (failed) of 1, 2, 3, 4, 5, 7 → 50 %: low
    assert (march.failed, march.finished) == (3, 6)
    assert march.change_failure_rate == 0.5
    assert march.tiers["change_failure_rate"] == "low"
    # time to restore: incidents 2 h and 30 min, the rollback without incident 20 min → median 30 min: elite
    assert march.time_to_restore == 1800
    assert march.restorations == 3
    assert march.incident_restore == (7200 + 1800) / 2
    assert march.automatic_rollback_time == 1200
    assert march.unresolved_incidents == 1
    assert march.tiers["time_to_restore"] == "elite"

    # April so far (10.5 days, no deployment): frequency 0 → low; the others have no data and no tier
    assert (april.deployments, april.per_day, april.tiers["deployment_frequency"]) == (0, 0, "low")
    assert april.lead_time is None and april.change_failure_rate is None and april.time_to_restore is None
    assert april.tiers["lead_time"] is None and april.tiers["change_failure_rate"] is None
    assert april.as_dict()["change_failure_rate"] == {"rate": None, "failed": 0, "deployments": 0, "tier": None}


def test_keys__a_linked_incident_makes_a_rollback_count_once_in_restore():
    """An automatic rollback with an incident is restored when the incident is: the rollback is not a second
    restoration (its own time is still shown apart)."""
    history = [dora.Deployment(1, at(3), "rolled_back", None, at(2), automatic_rollback=True,
                               rollback_started_at=at(3, 1), rollback_finished_at=at(3, 1, 10))]
    incidents = [dora.Incident(1, at(3, 1), at(3, 5), deployment_id=1)]
    (week,) = dora.report("week", at(4), 1, history, incidents)
    assert (week.restorations, week.time_to_restore, week.automatic_rollback_time) == (1, 4 * 3600, 600)
    assert week.tiers["time_to_restore"] == "high"  # 4 h: under a day


@pytest.mark.parametrize(("lead", "expected"), [(3599, "elite"), (3600, "high")])
def test_keys__lead_time_at_the_one_hour_boundary(lead, expected):
    history = [dora.Deployment(1, at(3), "succeeded", at(3, 2), at(3, 2) - dt.timedelta(seconds=lead))]
    (week,) = dora.report("week", at(4), 1, history, [])
    assert week.lead_time == lead and week.tiers["lead_time"] == expected


@pytest.mark.parametrize(("failed", "total", "expected"), [(3, 20, "elite"), (4, 20, "high"), (6, 20, "high"),
                                                           (7, 20, "medium"), (9, 20, "medium"), (10, 20, "low")])
def test_keys__change_failure_rate_at_its_boundaries(failed, total, expected):
    """3/20 = 15 % is elite, 4/20 = 20 % high, 30 % still high, 35 % medium, 45 % medium, 50 % low."""
    history = [dora.Deployment(i, at(2, i % 24), "rolled_back" if i < failed else "succeeded", None, at(1))
               for i in range(total)]
    (month,) = dora.report("month", at(31, 23), 1, history, [])
    assert (month.failed, month.finished) == (failed, total)
    assert month.tiers["change_failure_rate"] == expected


@pytest.mark.parametrize(("metric", "value", "expected"), [
    ("deployment_frequency", 1.0, "elite"), ("deployment_frequency", 0.99, "high"),
    ("deployment_frequency", 1 / 30, "high"), ("deployment_frequency", 1 / 31, "medium"),
    ("deployment_frequency", 1 / 182, "medium"), ("deployment_frequency", 1 / 183, "low"),
    ("deployment_frequency", 0, "low"),
    ("lead_time", 0, "elite"), ("lead_time", 3599.9, "elite"), ("lead_time", 3600, "high"),
    ("lead_time", 7 * 86400 - 1, "high"), ("lead_time", 7 * 86400, "medium"),
    ("lead_time", 182 * 86400 - 1, "medium"), ("lead_time", 182 * 86400, "low"),
    ("time_to_restore", 3599, "elite"), ("time_to_restore", 3600, "high"), ("time_to_restore", 86399, "high"),
    ("time_to_restore", 86400, "medium"), ("time_to_restore", 7 * 86400 - 1, "medium"),
    ("time_to_restore", 7 * 86400, "low"),
    ("change_failure_rate", 0, "elite"), ("change_failure_rate", 0.15, "elite"),
    ("change_failure_rate", 0.1501, "high"), ("change_failure_rate", 0.30, "high"),
    ("change_failure_rate", 0.3001, "medium"), ("change_failure_rate", 0.45, "medium"),
    ("change_failure_rate", 0.4501, "low"), ("change_failure_rate", 1, "low"),
    ("lead_time", None, None),
])
def test_tier__boundaries(metric, value, expected):
    assert dora.tier(metric, value) == expected


def test_periods__weeks_start_on_monday_and_quarters_on_their_first_month():
    weeks = dora.periods("week", at(4, 15), 2)  # Wednesday 4 March 2026
    assert [(p.start, p.end, p.label) for p in weeks] == [
        (at(23, month=2), at(2), "2026-W09"), (at(2), at(9), "2026-W10")]
    quarters = dora.periods("quarter", at(4, 15), 3)
    assert [p.label for p in quarters] == ["2025-Q3", "2025-Q4", "2026-Q1"]
    assert quarters[0].start == dt.datetime(2025, 7, 1, tzinfo=UTC) and quarters[-1].end == at(1, month=4)
    with pytest.raises(ValueError):
        dora.periods("year", at(4), 1)


def test_keys__the_current_period_rates_over_its_days_so_far():
    history = [dora.Deployment(i, at(2, 8 + i), "succeeded", at(2, 9 + i), at(2, 8)) for i in range(3)]
    (month,) = dora.report("month", at(3, 0), 1, history, [])  # two days into March
    assert month.per_day == 1.5 and month.tiers["deployment_frequency"] == "elite"


def test_keys__succeeded_before_its_change_started__left_out_of_lead_time():
    history = [dora.Deployment(1, at(3), "succeeded", at(3, 1), at(3, 2)),  # skewed clock: -1 h
               dora.Deployment(2, at(4), "succeeded", at(4, 3), at(4, 1))]  # 2 h
    (month,) = dora.report("month", at(31), 1, history, [])
    assert (month.lead_time, month.lead_time_samples, month.deployments) == (7200, 1, 2)
