"""Version arithmetic (releases/versioning.py, pure)."""
import pytest

from releases import versioning


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
