"""The public status page's JSON documents in the OpenAPI document (a drf-spectacular ``POSTPROCESSING_HOOKS``
entry).

``/status/api/v2/*.json`` are published static files (``publishing``), not DRF views, so drf-spectacular cannot
see them: this hook adds their paths and component schemas (``Statuspage*``: the names ``Component``,
``Incident`` and ``Maintenance`` are the operator API's). The shapes are Atlassian Statuspage's public v2
format as ``documents`` writes it: every field always present (null when empty), no other field; the
enumerations are the code's own. Tests validate the published files against them (tests/monitoring/
test_schema.py).
"""
from pmrelease.openapi import merge

from . import status as st
from .models import IncidentStatus, MaintenanceStatus

TAG = "Status page"
TAGS = [{"name": TAG, "description": "The public status page's Statuspage-compatible JSON (Atlassian Statuspage "
                                     "public API v2): no authentication, published files (ETag / Last-Modified)."}]


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties, description="", nullable=()):
    """A closed object: every property required, none other allowed; ``nullable`` names may be null."""
    for name in nullable:
        properties[name] = {**properties[name], "nullable": True}
    schema = {"type": "object", "required": list(properties), "properties": properties,
              "additionalProperties": False}
    if description:
        schema["description"] = description
    return schema


_STRING = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_COMPONENT_STATUS = {"type": "string", "enum": list(st.COMPONENT_STATUSES)}


def _update(statuses):
    return _object({
        "id": _STRING, "status": {"type": "string", "enum": statuses}, "body": _STRING, "incident_id": _STRING,
        "created_at": _TIME, "updated_at": _TIME, "display_at": _TIME,
        "affected_components": {"type": "array", "items": _ref("StatuspageAffectedComponent")},
    }, "An update of an incident or a maintenance.", nullable=("affected_components",))


def _incident(update, impacts, statuses, description, **extra):
    return _object({
        "id": _STRING, "name": _STRING, "status": {"type": "string", "enum": statuses},
        "created_at": _TIME, "updated_at": _TIME, "monitoring_at": _TIME, "resolved_at": _TIME,
        "impact": {"type": "string", "enum": impacts},
        "shortlink": {"type": "string", "format": "uri"}, "started_at": _TIME, "page_id": _STRING,
        "incident_updates": {"type": "array", "items": _ref(update)},
        "components": {"type": "array", "items": _ref("StatuspageComponent")},
        **extra,
    }, description, nullable=("monitoring_at", "resolved_at", "started_at"))


_PAGE = {"page": _ref("StatuspagePage")}
_COMPONENTS = {"type": "array", "items": _ref("StatuspageComponent"),
               "description": "Top-level groups and ungrouped components by position, each group followed by its "
                              "components."}
_INCIDENTS = {"type": "array", "items": _ref("StatuspageIncident")}
_MAINTENANCES = {"type": "array", "items": _ref("StatuspageMaintenance")}

_component = _object({
    "id": _STRING, "name": _STRING, "status": _COMPONENT_STATUS, "created_at": _TIME, "updated_at": _TIME,
    "position": {"type": "integer"}, "description": _STRING, "showcase": {"type": "boolean"},
    "start_date": {"type": "string", "format": "date"}, "group_id": _STRING, "page_id": _STRING,
    "group": {"type": "boolean"}, "only_show_if_degraded": {"type": "boolean"},
    "components": {"type": "array", "items": _STRING,
                   "description": "A group's components' ids (only on a group)."},
}, "A component, or a group of components (`group: true`, its status the worst of its components').",
    nullable=("description", "start_date", "group_id"))
_component["required"].remove("components")

SCHEMAS = {
    "StatuspagePage": _object({"id": _STRING, "name": _STRING, "url": {"type": "string", "format": "uri"},
                               "time_zone": _STRING, "updated_at": _TIME},
                              "The page every document opens with."),
    "StatuspageStatus": _object({
        "indicator": {"type": "string", "enum": list(st.INDICATORS)},
        "description": {"type": "string", "example": st.INDICATOR_DESCRIPTIONS["none"]},
    }, "The page's overall status: the worst of its components, open incidents and active maintenance."),
    "StatuspageComponent": _component,
    "StatuspageAffectedComponent": _object({"code": _STRING, "name": _STRING, "old_status": _COMPONENT_STATUS,
                                            "new_status": _COMPONENT_STATUS},
                                           "A component whose status an update changed (`code`: its id)."),
    "StatuspageIncidentUpdate": _update(list(IncidentStatus.values)),
    "StatuspageMaintenanceUpdate": _update(list(MaintenanceStatus.values)),
    "StatuspageIncident": _incident("StatuspageIncidentUpdate", list(st.IMPACTS), list(IncidentStatus.values),
                                    "An incident, with its updates (newest first) and affected components."),
    "StatuspageMaintenance": _incident(
        "StatuspageMaintenanceUpdate", ["maintenance"], list(MaintenanceStatus.values),
        "A scheduled maintenance: the incident shape (impact `maintenance`, `resolved_at` when completed) plus its "
        "window.", scheduled_for=_TIME, scheduled_until=_TIME),
    "StatuspageSummary": _object({**_PAGE, "components": _COMPONENTS,
                                  "incidents": {**_INCIDENTS, "description": "The unresolved incidents."},
                                  "scheduled_maintenances": {**_MAINTENANCES,
                                                             "description": "Active, then upcoming maintenances."},
                                  "status": _ref("StatuspageStatus")},
                                 "Everything on the page: components, unresolved incidents, active and upcoming "
                                 "maintenances, the status."),
    "StatuspageStatusDocument": _object({**_PAGE, "status": _ref("StatuspageStatus")}, "The page's status."),
    "StatuspageComponents": _object({**_PAGE, "components": _COMPONENTS}, "Every component."),
    "StatuspageIncidents": _object({**_PAGE, "incidents": _INCIDENTS}, "Incidents, newest first."),
    "StatuspageScheduledMaintenances": _object({**_PAGE, "scheduled_maintenances": _MAINTENANCES},
                                               "Scheduled maintenances."),
}

_PAGE_EXAMPLE = {"id": "penguinmails", "name": "PenguinMails", "url": "https://status.penguinmails.example/status",
                 "time_zone": "UTC", "updated_at": "2026-12-01T10:00:00.000Z"}
_EXAMPLES = {
    "StatuspageStatusDocument": {"page": _PAGE_EXAMPLE, "status": {"indicator": "minor",
                                                                   "description": "Partially Degraded Service"}},
    "StatuspageComponents": {"page": _PAGE_EXAMPLE, "components": [{
        "id": "3", "name": "SMTP relay", "status": "degraded_performance", "created_at": "2026-11-01T09:00:00.000Z",
        "updated_at": "2026-12-01T09:58:00.000Z", "position": 1, "description": None, "showcase": True,
        "start_date": None, "group_id": None, "page_id": "penguinmails", "group": False,
        "only_show_if_degraded": False}]},
}
DOCUMENTS = [
    ("summary.json", "statuspage_summary", "StatuspageSummary", "The whole page."),
    ("status.json", "statuspage_status", "StatuspageStatusDocument", "The page's status indicator."),
    ("components.json", "statuspage_components", "StatuspageComponents", "Every component and group."),
    ("incidents.json", "statuspage_incidents", "StatuspageIncidents", "The 50 most recent incidents."),
    ("incidents/unresolved.json", "statuspage_incidents_unresolved", "StatuspageIncidents",
     "The incidents that are investigating, identified or monitoring."),
    ("scheduled-maintenances.json", "statuspage_scheduled_maintenances", "StatuspageScheduledMaintenances",
     "The 50 most recent maintenances."),
    ("scheduled-maintenances/upcoming.json", "statuspage_scheduled_maintenances_upcoming",
     "StatuspageScheduledMaintenances", "The maintenances that are scheduled and not started."),
    ("scheduled-maintenances/active.json", "statuspage_scheduled_maintenances_active",
     "StatuspageScheduledMaintenances", "The maintenances in progress or verifying."),
]


def _operation(operation_id, schema, summary):
    media = {"schema": _ref(schema)}
    if schema in _EXAMPLES:
        media["example"] = _EXAMPLES[schema]
    return {"get": {
        "operationId": operation_id, "tags": [TAG], "summary": summary, "security": [],
        "description": f"{summary} A published file: it answers without the database.",
        "parameters": [{"name": "If-None-Match", "in": "header", "required": False, "schema": _STRING,
                        "description": "The ETag of a previous answer: 304 while the file is the same."}],
        "responses": {
            "200": {"description": summary, "content": {"application/json": media},
                    "headers": {"ETag": {"schema": _STRING}, "Last-Modified": {"schema": _STRING}}},
            "304": {"description": "Not modified since If-None-Match / If-Modified-Since."},
            "503": {"description": "Nothing published yet, and publishing now failed (retry later).",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    "content": {"text/plain": {"schema": _STRING}}},
        },
    }}


PATHS = {f"/status/api/v2/{name}": _operation(operation_id, schema, summary)
         for name, operation_id, schema, summary in DOCUMENTS}


def document_status_json(result, generator, request, public):
    """The status page's Statuspage v2 JSON documents in the OpenAPI document."""
    return merge(result, paths=PATHS, schemas=SCHEMAS, tags=TAGS)
