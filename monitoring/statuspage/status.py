"""Status vocabulary of the public status page and how statuses combine (pure: no Django import).

The names and enumerations are Atlassian Statuspage's public v2 format, which status aggregators read.
"""

OPERATIONAL = "operational"
DEGRADED = "degraded_performance"
PARTIAL = "partial_outage"
MAJOR = "major_outage"
MAINTENANCE = "under_maintenance"

# Worst first is the last: maintenance is planned, so it ranks below any unplanned degradation.
COMPONENT_STATUSES = [OPERATIONAL, MAINTENANCE, DEGRADED, PARTIAL, MAJOR]
COMPONENT_STATUS_LABELS = {
    OPERATIONAL: "Operational",
    MAINTENANCE: "Under maintenance",
    DEGRADED: "Degraded performance",
    PARTIAL: "Partial outage",
    MAJOR: "Major outage",
}
_RANK = {status: rank for rank, status in enumerate(COMPONENT_STATUSES)}

IMPACTS = ["none", "minor", "major", "critical"]
INDICATORS = ["none", "maintenance", "minor", "major", "critical"]
INDICATOR_DESCRIPTIONS = {
    "none": "All Systems Operational",
    "maintenance": "Service Under Maintenance",
    "minor": "Partially Degraded Service",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}
# What a component status says about the whole page.
_COMPONENT_INDICATOR = {OPERATIONAL: "none", MAINTENANCE: "maintenance", DEGRADED: "minor", PARTIAL: "major",
                        MAJOR: "critical"}

# The component status an incident of a given impact puts its components in when published at once.
IMPACT_COMPONENT_STATUS = {"none": OPERATIONAL, "minor": DEGRADED, "major": PARTIAL, "critical": MAJOR}


def rank(status):
    return _RANK[status]


def worst(statuses, default=OPERATIONAL):
    """The worst of component statuses (``default`` when there are none)."""
    statuses = list(statuses)
    if not statuses:
        return default
    return max(statuses, key=_RANK.__getitem__)


def indicator(*, component_statuses, incident_impacts=(), maintenance_active=False):
    """The page's status indicator and its description, from components, open incidents and maintenance."""
    candidates = [_COMPONENT_INDICATOR[s] for s in component_statuses]
    candidates += [i if i != "none" else "minor" for i in incident_impacts]
    if maintenance_active:
        candidates.append("maintenance")
    value = max(candidates, key=INDICATORS.index) if candidates else "none"
    return value, INDICATOR_DESCRIPTIONS[value]


def is_degraded(status):
    return status not in (OPERATIONAL,)
