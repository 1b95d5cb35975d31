"""OpenAPI schema post-processing (drf-spectacular ``POSTPROCESSING_HOOKS``): the error answers every
operation can give, documented once, so that clients (and schemathesis) know them.

- 400: the input is wrong (a body, or query parameters such as filters and pages), with what is wrong;
- 401 / 403: not authenticated / not allowed (operations that need authentication);
- 404: unknown or invisible object, unknown page;
- 409: the object's state does not allow it (writes).
"""
ERROR = {
    "type": "object",
    "description": 'What is wrong: {"detail": …, "code": …} or, for invalid input, field names with their '
                   "messages.",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "additionalProperties": True,
}
DESCRIPTIONS = {
    "400": "Invalid input: what is wrong, by field.",
    "401": "Not authenticated.",
    "403": "Not allowed.",
    "404": "Not found (or not visible to you), or no such page.",
    "409": "Not allowed in the object's current state.",
}
WRITES = {"post", "put", "patch", "delete"}


def _codes(method, operation):
    codes = ["404"]
    if operation.get("requestBody") or operation.get("parameters"):
        codes.append("400")
    if operation.get("security") != [] and operation.get("security") != [{}]:
        codes += ["401", "403"]
    if method in WRITES:
        codes += ["400", "409"]
    return codes


def document_errors(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR)
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete", "head", "options"}:
                continue
            responses = operation.setdefault("responses", {})
            for code in _codes(method, operation):
                responses.setdefault(code, {
                    "description": DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                })
    return result


IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "description": "Make a retry safe: the same key with the same request answers the first response (with "
                   "`Idempotent-Replayed: true`); the same key with another request is a 422; while the first is "
                   "running, a 409. Kept 24 h, per token or user (pmrelease.idempotency).",
}


def document_idempotency(result, generator, request, public):
    """Every POST under /api/v1/ takes an ``Idempotency-Key`` header (pmrelease.idempotency)."""
    for path, path_item in result.get("paths", {}).items():
        operation = path_item.get("post")
        if operation is None or not path.startswith("/api/v1/"):
            continue
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name") == "Idempotency-Key" for p in parameters):
            parameters.append(IDEMPOTENCY_PARAMETER)
        operation.setdefault("responses", {}).setdefault("422", {
            "description": "The Idempotency-Key was used for another request.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        })
    return result


WEBHOOK_EVENT = {
    "type": "object",
    "description": "The body of a signed webhook (pmrelease.webhooks): `POST <url>` with `X-PMR-Event`, `X-PMR-Delivery` "
                   "(the id: the same on retries, deduplicate on it) and `X-PMR-Signature: t=<unix>,v1=<hex>` where "
                   "hex = HMAC-SHA256(secret, `<t>.` + raw body); refuse a t more than 300 s from your clock.",
    "required": ["schema_version", "id", "event", "created_at", "environment", "title", "severity", "data"],
    "properties": {
        "schema_version": {"type": "integer", "enum": [1]},
        "id": {"type": "string"},
        "event": {"type": "string", "enum": [
            "deployment.started", "deployment.step_changed", "deployment.succeeded", "deployment.failed",
            "deployment.rolled_back", "gate.override_needed", "gate.result", "release.approved",
            "approval.requested", "trigger.fired", "alert.firing", "alert.resolved", "slo.burn_rate",
            "incident.published", "flag.stale", "secret.rotation", "change.submitted", "change.in_review",
            "change.approved", "change.rejected", "change.reopened", "change.scheduled", "change.implementing",
            "change.validating", "change.closed", "change.failed", "change.cancelled", "channel.test"]},
        "created_at": {"type": "string", "format": "date-time"},
        "environment": {"type": "string", "nullable": True},
        "title": {"type": "string"},
        "severity": {"type": "string", "enum": ["info", "success", "warning", "failure"]},
        "data": {"type": "object", "additionalProperties": True, "description": (
            "Per event. Deployment events: deployment, environment, version, status, strategy, link (+ reason, "
            "automatic_rollback when finished; step {position, phase, kind, name, status, outcome} for "
            "step_changed; gate {slug, name, status, attempt, tests, passed, failed, errors, url} for gate.result; "
            "waiting_for for gate.override_needed). release.approved: release, version, type, title, environments, "
            "link. change.* (one per transition of a change request): WebhookChangeData.")},
    },
}

WEBHOOK_CHANGE_DATA = {
    "type": "object",
    "description": "`data` of the change events: change.submitted, change.in_review, change.approved, change.rejected "
                   "(back to draft), change.reopened (approved content edited: back in review), change.scheduled, "
                   "change.implementing, change.validating (implemented; validation under way), change.closed, "
                   "change.failed, change.cancelled — one per transition of a change request, delivered to the "
                   "channels subscribed to the event in any of the change's environments (or in all).",
    "required": ["change", "number", "title", "type", "class", "priority", "risk", "transition", "status_before",
                 "status", "actor", "reason", "environments", "planned_start", "close_code", "approval_round",
                 "audit_event", "link", "api_link"],
    "properties": {
        "change": {"type": "integer", "description": "the change request's id"},
        "number": {"type": "string", "description": "CHG-<id>"},
        "title": {"type": "string"},
        "type": {"type": "string", "enum": ["enhancement", "bug_fix", "security", "infrastructure"]},
        "class": {"type": "string", "enum": ["normal", "standard", "emergency", "flag_change"]},
        "priority": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
        "risk": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
        "transition": {"type": "string", "enum": ["submit", "review", "approve", "reject", "reopen", "schedule",
                                                  "implement", "validate", "close", "fail", "cancel"]},
        "status_before": {"type": "string"},
        "status": {"type": "string", "description": "the state after the transition"},
        "actor": {"type": "string", "description": "who (`system` for the portal itself; `account (token name)` "
                                                   "through an API token)"},
        "reason": {"type": "string"},
        "environments": {"type": "array", "items": {"type": "string"}},
        "planned_start": {"type": "string", "format": "date-time", "nullable": True},
        "close_code": {"type": "string", "nullable": True,
                       "enum": ["successful", "successful_with_issues", "unsuccessful", None]},
        "approval_round": {"type": "integer"},
        "audit_event": {"type": "integer", "nullable": True, "description": "the audit trail's row of the transition"},
        "link": {"type": "string", "format": "uri", "description": "the change in the admin"},
        "api_link": {"type": "string", "format": "uri", "description": "the change in the REST API"},
    },
}


def document_webhooks(result, generator, request, public):
    """The webhook payload as a component (``WebhookEvent``), so generated clients and receivers have its type."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["WebhookEvent"] = WEBHOOK_EVENT
    schemas["WebhookChangeData"] = WEBHOOK_CHANGE_DATA
    return result
