"""Pure modules: versions, risk matrix, release notes, cadence."""
import datetime as dt

import pytest

from releases import cadence, notes, risk, versioning


@pytest.mark.parametrize(("last", "rtype", "expected"), [
    ("2.1.0", "major", "3.0.0"),
    ("2.1.0", "minor", "2.2.0"),
    ("2.1.0", "patch", "2.1.1"),
    ("2.1.0", "hotfix", "2.1.1"),
    ("2.1.3", "minor", "2.2.0"),
    ("2.0.0-rc.1", "major", "2.0.0"),
    (None, "minor", "0.1.0"),
    (None, "major", "1.0.0"),
])
def test_propose__each_release_type__bumps_the_right_part(last, rtype, expected):
    assert versioning.propose(last, rtype) == expected


@pytest.mark.parametrize("bad", ["v2.1.0", "2.1", "two", "", "2.1.0.4", "02.1.0"])
def test_parse__non_semver__refused_with_message(bad):
    with pytest.raises(versioning.InvalidVersion, match="not a semantic version"):
        versioning.parse(bad)


def test_latest__mixed_versions__semver_order_not_string_order():
    assert versioning.latest(["2.9.0", "2.10.0", "garbage", "2.10.0-rc.1"]) == "2.10.0"


def test_is_valid_successor__lower_or_same_major__refused():
    assert versioning.is_valid_successor("2.1.0", "2.0.9", "patch")[0] is False
    assert versioning.is_valid_successor("2.1.0", "2.2.0", "major")[0] is False
    assert versioning.is_valid_successor("2.1.0", "3.0.0", "major")[0] is True


@pytest.mark.parametrize(("impact", "likelihood", "level"), [
    ("low", "low", "low"), ("low", "high", "medium"), ("medium", "medium", "medium"),
    ("high", "low", "medium"), ("high", "high", "critical"), ("critical", "low", "high"),
    ("critical", "medium", "critical"),
])
def test_risk_level__matrix__maps_impact_and_likelihood(impact, likelihood, level):
    assert risk.risk_level(impact, likelihood) == level


def test_risk_level__unknown_value__refused():
    with pytest.raises(ValueError, match="impact must be one of"):
        risk.risk_level("huge", "low")


def test_required_quorum__high_risk__needs_two():
    assert risk.required_quorum("high", 1) == 2
    assert risk.required_quorum("low", 3) == 3


def test_notes_render__all_change_kinds__seed_layout():
    md = notes.render(version="2.1.0", product="PenguinMails", date=dt.date(2025, 10, 28), changes=[
        ("security", "Patched OpenSSL", "CVE-2025-1"),
        ("feature", "Advanced campaign scheduling", ""),
        ("fix", "Fixed Outlook rendering", "PM-12"),
        ("improvement", "Upgraded to React 18", ""),
        ("migration", "Database migration required", ""),
    ])
    lines = md.splitlines()
    assert lines[0] == "# Release 2.1.0 - PenguinMails (October 28, 2025)"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## 🚀 New Features", "## 🐛 Bug Fixes", "## 🔧 Technical Improvements",
                        "## 📋 Migration Notes", "## 🔒 Security Updates"]
    assert "- Fixed Outlook rendering (PM-12)" in lines
    assert lines[lines.index("## 🔒 Security Updates") + 1] == "- Patched OpenSSL (CVE-2025-1)"


def test_notes_render__empty_sections__left_out():
    md = notes.render(version="1.0.1", product="P", date=dt.date(2025, 1, 2), changes=[("fix", "x", "")])
    assert "New Features" not in md and "## 🐛 Bug Fixes" in md


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
