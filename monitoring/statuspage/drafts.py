"""The public wording of incidents the deployment engine drafts (pure: no Django import).

A deployment that ended badly tells the public what users notice, from a template — never the engineering
detail (versions, step names, health-check output, "injected failure"), which stays in the incident's internal
notes. It also *proposes* a status for each linked component from how the deployment ended: an operator confirms
or changes them on the draft's page before publishing.
"""
from dataclasses import dataclass
from string import Template

ROLLED_BACK_AUTOMATICALLY = "rolled_back_automatically"  # rollback finished: the previous version serves again
ROLLED_BACK = "rolled_back"  # an operator rolled it back (finished)
FAILED = "failed"  # the deployment or its rollback did not finish: service may still be affected
KINDS = (ROLLED_BACK_AUTOMATICALLY, ROLLED_BACK, FAILED)

TEMPLATES = {
    ROLLED_BACK_AUTOMATICALLY: {
        "name": "Errors during an update of $services",
        "body": ("An update to $services showed errors and was rolled back automatically. Service has been restored "
                 "to the previous version; we are monitoring to confirm everything works normally."),
        "status": "operational", "impact": "minor"},
    ROLLED_BACK: {
        "name": "Update of $services rolled back",
        "body": ("We rolled back an update to $services as a precaution. Service runs on the previous version; "
                 "we are monitoring to confirm everything works normally."),
        "status": "operational", "impact": "minor"},
    FAILED: {
        "name": "Degraded service after an update of $services",
        "body": ("An update to $services did not complete as expected and some features may be unavailable or "
                 "slow. Our engineers are investigating; we will post an update shortly."),
        "status": "partial_outage", "impact": "major"},
}


@dataclass(frozen=True)
class Draft:
    name: str
    body: str
    proposed_status: str
    impact: str


def services_phrase(component_names, fallback):
    names = [n for n in component_names if n]
    if not names:
        return fallback
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def draft(kind, *, component_names, product):
    """The public name and first update of an engine-drafted incident, and the status it proposes."""
    if kind not in TEMPLATES:
        raise ValueError(f"unknown incident draft kind {kind!r}; one of {', '.join(KINDS)}")
    template = TEMPLATES[kind]
    values = {"services": services_phrase(component_names, product)}
    name = Template(template["name"]).safe_substitute(values)
    return Draft(name=name[:200], body=Template(template["body"]).safe_substitute(values),
                 proposed_status=template["status"], impact=template["impact"])


def kind_of(*, status, automatic_rollback):
    """How a deployment ended, for the draft: ``status`` is the deployment's final status."""
    if status == "rolled_back":
        return ROLLED_BACK_AUTOMATICALLY if automatic_rollback else ROLLED_BACK
    return FAILED
