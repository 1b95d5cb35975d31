"""A change's risk from its impact, its likelihood and the environments it touches (pure), with the reasons."""

IMPACTS = ("none", "low", "medium", "high", "system_wide")
LIKELIHOODS = ("low", "medium", "high")
LEVELS = ("low", "medium", "high", "critical")

# impact × likelihood → level (rows: impact, columns: likelihood low/medium/high)
MATRIX = {
    "none": ("low", "low", "low"),
    "low": ("low", "low", "medium"),
    "medium": ("low", "medium", "high"),
    "high": ("medium", "high", "critical"),
    "system_wide": ("high", "critical", "critical"),
}


def _at_least(level, floor):
    return level if LEVELS.index(level) >= LEVELS.index(floor) else floor


def assess(*, impact, likelihood, production_tiers=0, environments=0):
    """(level, reasons): the matrix, raised to at least medium when the change touches a production-tier
    environment, and to at least high when it touches more than one of them."""
    if impact not in IMPACTS:
        raise ValueError(f"impact must be one of {', '.join(IMPACTS)}")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}")
    level = MATRIX[impact][LIKELIHOODS.index(likelihood)]
    reasons = [f"{impact} impact × {likelihood} likelihood: {level}"]
    if production_tiers >= 1 and LEVELS.index(level) < LEVELS.index("medium"):
        level = "medium"
        reasons.append("touches a production environment: at least medium")
    if production_tiers >= 2 and LEVELS.index(level) < LEVELS.index("high"):
        level = "high"
        reasons.append(f"touches {production_tiers} production environments: at least high")
    if environments >= 4 and LEVELS.index(level) < LEVELS.index("high"):
        level = "high"
        reasons.append(f"touches {environments} environments: at least high")
    return level, reasons


def effective(assessed, override):
    """The risk that counts: an approver may raise the assessed level, never lower it."""
    return _at_least(override, assessed) if override else assessed


def rank(level):
    return LEVELS.index(level)
