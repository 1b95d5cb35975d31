"""The release risk matrix: impact × likelihood → risk level (no Django import)."""

IMPACTS = ("low", "medium", "high", "critical")
LIKELIHOODS = ("low", "medium", "high")
LEVELS = ("low", "medium", "high", "critical")

#            likelihood:  low        medium      high
RISK_MATRIX = {
    "low": ("low", "low", "medium"),
    "medium": ("low", "medium", "high"),
    "high": ("medium", "high", "critical"),
    "critical": ("high", "critical", "critical"),
}


def risk_level(impact, likelihood):
    if impact not in RISK_MATRIX:
        raise ValueError(f"impact must be one of {', '.join(IMPACTS)}, not '{impact}'")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, not '{likelihood}'")
    return RISK_MATRIX[impact][LIKELIHOODS.index(likelihood)]


def required_quorum(level, base_quorum=1):
    """Approvals a release at this risk level needs at least (high and critical add reviewers)."""
    return max(base_quorum, {"low": 1, "medium": 1, "high": 2, "critical": 2}[level])
