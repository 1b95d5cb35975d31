"""The risk matrix (releases/risk.py, pure)."""
import pytest

from releases import risk


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
