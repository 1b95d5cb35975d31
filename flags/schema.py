"""The flag edge's APIs in the OpenAPI document (a drf-spectacular ``POSTPROCESSING_HOOKS`` entry).

OFREP and the Unleash client and frontend APIs are served by ``flags.edge`` (a plain WSGI application, no DRF),
so drf-spectacular cannot see them: this hook adds their paths, component schemas, security schemes and tags,
so that generated clients see every API of the portal. The shapes are the wire formats the edge writes (see
``flags.edge`` and ``flags.documents``): OFREP as in its own specification (open-feature/protocol,
``service/openapi.yaml``: the same paths, operation ids and schema names, PascalCased), the Unleash APIs as
Unleash's SDKs read them. Tests validate real answers against these schemas (tests/flags/test_schema.py).
"""
from pmrelease.openapi import merge


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, example=None, description=""):
    media = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {"application/json": media}}


def _answer(description, schema, example=None, headers=None):
    response = _json(schema, example, description)
    if headers:
        response["headers"] = headers
    return response


_KEY_USE = ("An environment's flag API key (`manage.py create_api_key --environment NAME --kind client|frontend|"
            "admin`, or the admin). A client key reads the Unleash client API and OFREP, a frontend key the frontend "
            "API and OFREP, an admin key all of them; every answer is about the key's environment.")
SECURITY_SCHEMES = {
    "flagKeyBearer": {"type": "http", "scheme": "bearer",
                      "description": f"`Authorization: Bearer <key>` (what OFREP providers send). {_KEY_USE}"},
    "flagKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                      "description": f"`X-API-Key: <key>` (OFREP's API-key header). {_KEY_USE}"},
    "flagKeyAuthorization": {"type": "apiKey", "in": "header", "name": "Authorization",
                             "description": f"`Authorization: <key>`, the raw key without a scheme (what Unleash "
                                            f"SDKs send). {_KEY_USE}"},
}
OFREP_SECURITY = [{"flagKeyBearer": []}, {"flagKeyHeader": []}, {"flagKeyAuthorization": []}]
UNLEASH_SECURITY = [{"flagKeyAuthorization": []}, {"flagKeyBearer": []}, {"flagKeyHeader": []}]

OFREP_TAG = "OFREP"
CLIENT_TAG = "Unleash client API"
FRONTEND_TAG = "Unleash frontend API"
TAGS = [
    {"name": OFREP_TAG, "description": "OpenFeature Remote Evaluation Protocol: flags evaluated by the portal for "
                                       "a context (any key kind). https://openfeature.dev/docs/reference/"
                                       "other-technologies/ofrep/"},
    {"name": CLIENT_TAG, "description": "For Unleash server-side SDKs (client or admin key): the environment's flag "
                                        "configuration to evaluate locally, the SDK's registration and its metrics."},
    {"name": FRONTEND_TAG, "description": "For Unleash frontend SDKs (frontend or admin key): the flags enabled for a "
                                          "context, with their variants."},
]

REASONS = ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"]
SCALAR = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}

# --- OFREP --------------------------------------------------------------------------------------------------
OFREP_SCHEMAS = {
    "EvaluationContext": {
        "type": "object",
        "description": "The evaluation context. `targetingKey` is the Unleash `userId` (unless `userId` is given); "
                       "`userId`, `sessionId`, `remoteAddress`, `appName`, `environment` (default: the key's) and "
                       "`currentTime` (ISO 8601) are Unleash's context fields; `properties` and every other "
                       "attribute are Unleash properties. Values are strings, numbers or booleans (null is "
                       "ignored); anything else is a 400 INVALID_CONTEXT.",
        "properties": {
            "targetingKey": {"type": "string", "description": "Who is evaluated (optional: rollouts by stickiness "
                                                              "`default` fall back to sessionId, then random)."},
            "currentTime": {"type": "string", "format": "date-time"},
            "properties": {"type": "object", "additionalProperties": SCALAR},
        },
        "additionalProperties": SCALAR,
        "example": {"targetingKey": "user-123", "plan": "pro", "country": "CA"},
    },
    "EvaluationRequest": {
        "type": "object",
        "description": "The body of a single-flag evaluation (an empty body is an empty context).",
        "required": ["context"],
        "properties": {"context": _ref("EvaluationContext")},
    },
    "BulkEvaluationRequest": {
        "type": "object",
        "description": "The body of a bulk evaluation: one context for every flag of the key's environment.",
        "required": ["context"],
        "properties": {"context": _ref("EvaluationContext")},
    },
    "FlagMetadata": {
        "type": "object",
        "description": "Metadata of an evaluation: `environment` (the key's), `flagType` (release, experiment, "
                       "operational, kill-switch, permission), `strategy` (the strategy that matched), `stale: true` "
                       "while the edge answers from a saved configuration (the database unreachable).",
        "properties": {"environment": {"type": "string"}, "flagType": {"type": "string"},
                       "strategy": {"type": "string"}, "stale": {"type": "boolean"}},
        "additionalProperties": SCALAR,
    },
    "EvaluationSuccess": {
        "type": "object",
        "description": "A flag's value for the context. `value` is the variant's payload when the flag has variants "
                       "(json: parsed, number: a number, csv: rows, string: the string), else the boolean. A "
                       "disabled flag (reason DISABLED, variant `disabled`) has no `value`: the provider gives the "
                       "caller's default (the code default of OFREP).",
        "required": ["key", "reason", "variant"],
        "properties": {
            "key": {"type": "string", "description": "The flag's key."},
            "value": {"description": "The evaluated value: boolean, string, number, object or array."},
            "reason": {"type": "string", "enum": REASONS},
            "variant": {"type": "string", "description": "`on` / `off` for a flag without variants, the variant's "
                                                         "name, or `disabled`."},
            "metadata": _ref("FlagMetadata"),
        },
        "anyOf": [
            {"required": ["value"], "properties": {"reason": {"enum": [r for r in REASONS if r != "DISABLED"]}}},
            {"properties": {"reason": {"enum": ["DISABLED"]}}, "not": {"required": ["value"]}},
        ],
    },
    "ServerEvaluationSuccess": {"allOf": [_ref("EvaluationSuccess")],
                                "description": "The answer of a single-flag evaluation."},
    "EvaluationFailure": {
        "type": "object",
        "description": "A flag that could not be evaluated for this request (400): what is wrong with the request.",
        "required": ["key", "errorCode"],
        "properties": {
            "key": {"type": "string"},
            "errorCode": {"type": "string", "enum": ["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT",
                                                     "GENERAL"]},
            "errorDetails": {"type": "string"},
            "metadata": _ref("FlagMetadata"),
        },
    },
    "FlagNotFound": {
        "type": "object",
        "description": "No flag with this key in the key's environment (archived flags included).",
        "required": ["key", "errorCode"],
        "properties": {"key": {"type": "string"}, "errorCode": {"type": "string", "enum": ["FLAG_NOT_FOUND"]},
                       "errorDetails": {"type": "string"}, "metadata": _ref("FlagMetadata")},
    },
    "BulkEvaluationSuccess": {
        "type": "object",
        "description": "Every (non-archived) flag of the key's environment, evaluated for the context.",
        "required": ["flags"],
        "properties": {
            "flags": {"type": "array", "items": {"oneOf": [_ref("EvaluationSuccess"), _ref("EvaluationFailure")]}},
            "metadata": _ref("FlagMetadata"),
        },
    },
    "BulkEvaluationFailure": {
        "type": "object",
        "description": "The whole bulk request is wrong (400).",
        "required": ["errorCode"],
        "properties": {"errorCode": {"type": "string", "enum": ["PARSE_ERROR", "INVALID_CONTEXT", "GENERAL"]},
                       "errorDetails": {"type": "string"}},
    },
    "GeneralErrorResponse": {
        "type": "object",
        "description": "Any other refusal or failure (401, 403, 413, 429, 500, 503): what is wrong.",
        "required": ["errorDetails"],
        "properties": {"errorDetails": {"type": "string"}},
    },
}

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                "schema": {"type": "integer", "minimum": 1}}}
_ETAG = {"ETag": {"description": "The answer's entity tag: send it back as If-None-Match.",
                  "schema": {"type": "string"}}}
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                  "description": "The ETag of a previous answer: 304 (no body) while the answer is the same."}


def _ofrep_errors(single):
    general = _ref("GeneralErrorResponse")
    return {
        "400": _answer("Bad request: the body is not JSON, not an object, or its context is not valid.",
                       _ref("EvaluationFailure" if single else "BulkEvaluationFailure"),
                       {**({"key": "new-checkout"} if single else {}), "errorCode": "INVALID_CONTEXT",
                        "errorDetails": "context attribute 'plan' must be a string, number or boolean"}),
        "401": _answer("No API key, or an invalid or revoked one.", general,
                       {"errorDetails": "the API key is invalid or revoked"}),
        "403": _answer("The key's kind cannot use this API.", general),
        "413": _answer("The body is larger than the limit (FLAGS_MAX_BODY_BYTES).", general),
        "429": _answer("The key's rate limit (requests per second) is exceeded.", general,
                       {"errorDetails": "rate limit of 100 requests per second exceeded"}, _RETRY_AFTER),
        "500": _answer("Internal error.", general, {"errorDetails": "internal error"}),
        "503": _answer("No flag configuration to answer with (database down and nothing saved).", general,
                       headers=_RETRY_AFTER),
    }


_CONTEXT_EXAMPLE = {"context": {"targetingKey": "user-123", "plan": "pro"}}
OFREP_PATHS = {
    "/ofrep/v1/evaluate/flags/{key}": {"post": {
        "operationId": "evaluateFlag",
        "tags": [OFREP_TAG],
        "summary": "Evaluate a single flag",
        "description": "Evaluates one flag of the key's environment for the context (OpenFeature server-side "
                       "providers, e.g. openfeature-provider-ofrep).",
        "security": OFREP_SECURITY,
        "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": "The flag's key.", "example": "new-checkout"}],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": _ref("EvaluationRequest"), "example": _CONTEXT_EXAMPLE}}},
        "responses": {
            "200": _answer("The flag's value for the context.", _ref("ServerEvaluationSuccess"),
                           {"key": "new-checkout", "value": True, "reason": "TARGETING_MATCH", "variant": "on",
                            "metadata": {"environment": "production", "flagType": "release",
                                         "strategy": "flexibleRollout"}}),
            "404": _answer("No such flag in the key's environment.", _ref("FlagNotFound"),
                           {"key": "no-such-flag", "errorCode": "FLAG_NOT_FOUND",
                            "errorDetails": "flag 'no-such-flag' was not found in production"}),
            **_ofrep_errors(single=True),
        },
    }},
    "/ofrep/v1/evaluate/flags": {"post": {
        "operationId": "evaluateFlagsBulk",
        "tags": [OFREP_TAG],
        "summary": "Evaluate every flag",
        "description": "Evaluates every flag of the key's environment for one context (OpenFeature client-side "
                       "providers). The answer has an ETag: send it as If-None-Match to get a 304 while nothing "
                       "changed for this context.",
        "security": OFREP_SECURITY,
        "parameters": [_IF_NONE_MATCH],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": _ref("BulkEvaluationRequest"), "example": _CONTEXT_EXAMPLE}}},
        "responses": {
            "200": _answer("Every flag's evaluation.", _ref("BulkEvaluationSuccess"),
                           {"flags": [{"key": "new-checkout", "value": True, "reason": "TARGETING_MATCH",
                                       "variant": "on", "metadata": {"environment": "production"}},
                                      {"key": "theme", "value": {"color": "blue"}, "reason": "SPLIT",
                                       "variant": "blue", "metadata": {"environment": "production"}},
                                      {"key": "dark-mode", "reason": "DISABLED", "variant": "disabled",
                                       "metadata": {"environment": "production"}}],
                            "metadata": {"environment": "production"}}, _ETAG),
            "304": {"description": "Not modified: the evaluation is the same as the one of If-None-Match.",
                    "headers": _ETAG},
            **_ofrep_errors(single=False),
        },
    }},
}

# --- Unleash ------------------------------------------------------------------------------------------------
UNLEASH_SCHEMAS = {
    "UnleashPayload": {
        "type": "object",
        "description": "A variant's payload: the value is always a string (json and csv encoded, number in decimal).",
        "required": ["type", "value"],
        "properties": {"type": {"type": "string", "enum": ["json", "csv", "string", "number"]},
                       "value": {"type": "string"}},
    },
    "UnleashConstraint": {
        "type": "object",
        "description": "A condition on a context field: `values` for the list operators (IN, NOT_IN, STR_*), "
                       "`value` for the single-value ones (NUM_*, DATE_*, SEMVER_*, REGEX, IN_CIDR); an unknown "
                       "operator never matches.",
        "required": ["contextName", "operator"],
        "properties": {
            "contextName": {"type": "string"},
            "operator": {"type": "string", "example": "IN"},
            "values": {"type": "array", "items": {"type": "string"}},
            "value": {"type": "string"},
            "inverted": {"type": "boolean"},
            "caseInsensitive": {"type": "boolean"},
        },
    },
    "UnleashVariantOverride": {
        "type": "object", "required": ["contextName", "values"],
        "properties": {"contextName": {"type": "string"}, "values": {"type": "array", "items": {"type": "string"}}},
    },
    "UnleashVariant": {
        "type": "object",
        "description": "A variant of a flag or of a strategy; weights are out of 1000.",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "weight": {"type": "integer", "minimum": 0, "maximum": 1000},
            "weightType": {"type": "string", "enum": ["variable", "fix"]},
            "stickiness": {"type": "string"},
            "payload": _ref("UnleashPayload"),
            "overrides": {"type": "array", "items": _ref("UnleashVariantOverride")},
        },
    },
    "UnleashStrategy": {
        "type": "object",
        "description": "An activation strategy: the flag is on when any strategy passes; a strategy passes when all "
                       "its constraints and those of its segments do.",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "example": "flexibleRollout"},
            "id": {"type": "string"},
            "title": {"type": "string", "nullable": True},
            "disabled": {"type": "boolean", "nullable": True},
            "sortOrder": {"type": "integer"},
            "parameters": {"type": "object", "additionalProperties": {"type": "string"},
                           "example": {"rollout": "25", "stickiness": "default", "groupId": "new-checkout"}},
            "constraints": {"type": "array", "items": _ref("UnleashConstraint")},
            "variants": {"type": "array", "items": _ref("UnleashVariant")},
            "segments": {"type": "array", "items": {"type": "integer"},
                         "description": "Ids of top-level segments (SDKs before client spec 4.2.0 get their "
                                        "constraints inlined instead)."},
        },
    },
    "UnleashDependency": {
        "type": "object",
        "description": "A parent flag: this flag is on only when the parent is enabled (or disabled, with "
                       "`enabled: false`), and with one of `variants` when given.",
        "required": ["feature"],
        "properties": {"feature": {"type": "string"}, "enabled": {"type": "boolean"},
                       "variants": {"type": "array", "items": {"type": "string"}}},
    },
    "UnleashFeature": {
        "type": "object",
        "description": "A flag in the Unleash client-API format. A flag imported from an Unleash document keeps the "
                       "keys it was imported with (unknown keys included).",
        "required": ["name", "enabled"],
        "properties": {
            "name": {"type": "string"},
            "type": {"type": "string", "example": "release"},
            "description": {"type": "string", "nullable": True},
            "enabled": {"type": "boolean"},
            "stale": {"type": "boolean"},
            "impressionData": {"type": "boolean"},
            "project": {"type": "string"},
            "strategies": {"type": "array", "items": _ref("UnleashStrategy")},
            "variants": {"type": "array", "items": _ref("UnleashVariant")},
            "dependencies": {"type": "array", "items": _ref("UnleashDependency")},
        },
    },
    "UnleashSegment": {
        "type": "object", "required": ["id", "constraints"],
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                       "description": {"type": "string", "nullable": True},
                       "constraints": {"type": "array", "items": _ref("UnleashConstraint")}},
    },
    "UnleashClientFeatures": {
        "type": "object",
        "description": "The key's environment's flag configuration (non-archived flags, by name). `segments` only "
                       "for SDKs that send Unleash-Client-Spec 4.2.0 or later.",
        "required": ["version", "features"],
        "properties": {
            "version": {"type": "integer", "enum": [2]},
            "features": {"type": "array", "items": _ref("UnleashFeature")},
            "segments": {"type": "array", "items": _ref("UnleashSegment")},
            "meta": {"type": "object", "properties": {
                "etag": {"type": "string"},
                "stale": {"type": "boolean", "description": "Answered from a saved configuration while the "
                                                            "database is unreachable."}}},
        },
    },
    "UnleashClientRegistration": {
        "type": "object",
        "description": "An SDK instance announcing itself (shown in the admin per flag environment).",
        "required": ["appName"],
        "properties": {
            "appName": {"type": "string", "minLength": 1},
            "instanceId": {"type": "string"},
            "sdkVersion": {"type": "string"},
            "environment": {"type": "string"},
            "strategies": {"type": "array", "items": {"type": "string"}},
            "started": {"type": "string", "format": "date-time"},
            "interval": {"type": "integer", "minimum": 0, "description": "Milliseconds between fetches."},
        },
        "example": {"appName": "checkout", "instanceId": "checkout-7d9f", "sdkVersion": "unleash-client-python:6.0.0",
                    "strategies": ["default", "flexibleRollout"], "started": "2026-12-01T10:00:00Z",
                    "interval": 15000},
    },
    "UnleashToggleCounts": {
        "type": "object",
        "properties": {"yes": {"type": "integer", "minimum": 0}, "no": {"type": "integer", "minimum": 0},
                       "variants": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}},
    },
    "UnleashClientMetrics": {
        "type": "object",
        "description": "How often each flag was evaluated on and off (and to which variant) in a time bucket.",
        "required": ["bucket"],
        "properties": {
            "appName": {"type": "string"},
            "instanceId": {"type": "string"},
            "environment": {"type": "string"},
            "bucket": {"type": "object", "required": ["toggles"], "properties": {
                "start": {"type": "string", "format": "date-time"},
                "stop": {"type": "string", "format": "date-time"},
                "toggles": {"type": "object", "additionalProperties": _ref("UnleashToggleCounts")}}},
        },
        "example": {"appName": "checkout", "instanceId": "checkout-7d9f", "bucket": {
            "start": "2026-12-01T10:00:00Z", "stop": "2026-12-01T10:01:00Z",
            "toggles": {"new-checkout": {"yes": 25, "no": 42, "variants": {"blue": 6}}}}},
    },
    "UnleashContext": {
        "type": "object",
        "description": "An Unleash context: the standard fields, `properties`, and any other field (taken as a "
                       "property). `remoteAddress` defaults to the caller's address, `environment` to the key's.",
        "properties": {
            "userId": {"type": "string"}, "sessionId": {"type": "string"}, "remoteAddress": {"type": "string"},
            "appName": {"type": "string"}, "environment": {"type": "string"},
            "currentTime": {"type": "string", "format": "date-time"},
            "properties": {"type": "object", "additionalProperties": SCALAR},
        },
        "additionalProperties": SCALAR,
    },
    "UnleashFrontendRequest": {
        "type": "object",
        "description": "The context, as `{\"context\": {...}}` or as the body itself.",
        "properties": {"context": _ref("UnleashContext")},
        "additionalProperties": True,
    },
    "UnleashFrontendVariant": {
        "type": "object",
        "required": ["name", "enabled"],
        "properties": {"name": {"type": "string"}, "enabled": {"type": "boolean"},
                       "feature_enabled": {"type": "boolean"}, "payload": _ref("UnleashPayload")},
    },
    "UnleashFrontendToggle": {
        "type": "object",
        "required": ["name", "enabled", "variant", "impressionData"],
        "properties": {"name": {"type": "string"}, "enabled": {"type": "boolean", "enum": [True]},
                       "variant": _ref("UnleashFrontendVariant"), "impressionData": {"type": "boolean"}},
    },
    "UnleashFrontendFeatures": {
        "type": "object",
        "description": "The flags enabled for the context (a disabled flag is not listed: the SDK gives the "
                       "caller's default for it).",
        "required": ["toggles"],
        "properties": {"toggles": {"type": "array", "items": _ref("UnleashFrontendToggle")}},
    },
    "UnleashError": {
        "type": "object",
        "description": "What is wrong: `error` and `message` (Unleash's), or `errorDetails` with `detail` and "
                       "`code` for an invalid registration or metrics body.",
        "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                       "errorDetails": {"type": "string"}, "detail": {"type": "string"}, "code": {"type": "string"}},
        "additionalProperties": True,
    },
}


def _unleash_errors(*codes):
    error = _ref("UnleashError")
    texts = {"400": "Bad request: what is wrong with the body or the query.",
             "401": "No API key, or an invalid or revoked one (SDKs stop polling).",
             "403": "The key's kind cannot use this API (SDKs stop polling).",
             "413": "The body is larger than the limit.",
             "503": "The database (or the configuration) cannot be reached; retry later."}
    answers = {code: _answer(texts[code], error) for code in codes}
    if "401" in answers:
        answers["401"]["content"]["application/json"]["example"] = {"error": "the API key is invalid or revoked",
                                                                    "message": "the API key is invalid or revoked"}
    if "503" in answers:
        answers["503"]["headers"] = _RETRY_AFTER
        answers["503"]["content"]["application/json"]["schema"] = {
            "oneOf": [_ref("UnleashError"), _ref("GeneralErrorResponse")]}
    return answers


def _header(name, description):
    return {"name": name, "in": "header", "required": False, "schema": {"type": "string"},
            "description": description}


_SDK_HEADERS = [_header("UNLEASH-APPNAME", "The application's name."),
                _header("UNLEASH-INSTANCEID", "The SDK instance's id.")]
_ACCEPTED = {"description": "Accepted (no body)."}


def _write(operation_id, tag, summary, description, schema, example_of):
    return {"post": {
        "operationId": operation_id, "tags": [tag], "summary": summary, "description": description,
        "security": UNLEASH_SECURITY, "parameters": list(_SDK_HEADERS),
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref(schema), "example": UNLEASH_SCHEMAS[example_of]["example"]}}},
        "responses": {"202": _ACCEPTED, **_unleash_errors("400", "401", "403", "413", "503")},
    }}


_FRONTEND_QUERY = [
    *({"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": description}
      for name, description in (("userId", "Context: the user."), ("sessionId", "Context: the session."),
                                ("remoteAddress", "Context: the user's address (default: the caller's)."),
                                ("appName", "Context: the application."),
                                ("environment", "Context: the environment (default: the key's)."),
                                ("currentTime", "Context: the time to evaluate at (ISO 8601)."))),
    {"name": "properties", "in": "query", "required": False, "style": "deepObject", "explode": True,
     "schema": {"type": "object", "additionalProperties": {"type": "string"}},
     "description": "Context properties: `properties[plan]=pro`."},
]
_FRONTEND_200 = _answer("The enabled flags for the context.", _ref("UnleashFrontendFeatures"),
                        {"toggles": [{"name": "new-checkout", "enabled": True, "impressionData": False,
                                      "variant": {"name": "disabled", "enabled": False, "feature_enabled": True}},
                                     {"name": "theme", "enabled": True, "impressionData": False,
                                      "variant": {"name": "blue", "enabled": True, "feature_enabled": True,
                                                  "payload": {"type": "json", "value": "{\"color\": \"blue\"}"}}}]},
                        _ETAG)
_NOT_MODIFIED = {"description": "Not modified: the answer is the one of If-None-Match.", "headers": _ETAG}
_FRONTEND_DESCRIPTION = ("The flags enabled for a context, with their variant (Unleash frontend SDKs: "
                         "unleash-proxy-client, @unleash/proxy-client-react...). ETag / If-None-Match.")
UNLEASH_PATHS = {
    "/api/client/features": {"get": {
        "operationId": "unleash_client_features",
        "tags": [CLIENT_TAG],
        "summary": "The flag configuration",
        "description": "The key's environment's flags and segments, for SDKs that evaluate locally (unleash-client-"
                       "python, unleash-client-node, ...). ETag / If-None-Match: 304 while nothing changed.",
        "security": UNLEASH_SECURITY,
        "parameters": [
            *_SDK_HEADERS,
            _header("Unleash-Client-Spec", "The client specification the SDK implements: from 4.2.0 segments are "
                                           "served at the top level, before it inlined into the strategies."),
            _IF_NONE_MATCH,
            {"name": "namePrefix", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Only the flags whose name starts with this."},
        ],
        "responses": {
            "200": _answer("The configuration.", _ref("UnleashClientFeatures"), {
                "version": 2,
                "features": [{"name": "new-checkout", "type": "release", "description": "", "enabled": True,
                              "stale": False, "impressionData": False, "project": "default",
                              "strategies": [{"name": "flexibleRollout",
                                              "parameters": {"rollout": "25", "stickiness": "default",
                                                             "groupId": "new-checkout"},
                                              "constraints": [{"contextName": "plan", "operator": "IN",
                                                               "values": ["pro"]}], "segments": [1]}],
                              "variants": []}],
                "segments": [{"id": 1, "name": "beta", "constraints": [
                    {"contextName": "country", "operator": "IN", "values": ["CA"]}]}],
                "meta": {"etag": "4c1d0f2b9a7e"}}, _ETAG),
            "304": _NOT_MODIFIED,
            **_unleash_errors("400", "401", "403", "503"),
        },
    }},
    "/api/client/register": _write(
        "unleash_client_register", CLIENT_TAG, "Register an SDK instance",
        "An SDK announces itself as it starts (its app name, instance, version, strategies, interval).",
        "UnleashClientRegistration", "UnleashClientRegistration"),
    "/api/client/metrics": _write(
        "unleash_client_metrics", CLIENT_TAG, "Report usage", "How often each flag was evaluated on and off.",
        "UnleashClientMetrics", "UnleashClientMetrics"),
    "/api/frontend": {
        "get": {"operationId": "unleash_frontend", "tags": [FRONTEND_TAG], "summary": "Flags for a context",
                "description": f"{_FRONTEND_DESCRIPTION} The context is in the query.", "security": UNLEASH_SECURITY,
                "parameters": [*_FRONTEND_QUERY, _IF_NONE_MATCH],
                "responses": {"200": _FRONTEND_200, "304": _NOT_MODIFIED,
                              **_unleash_errors("400", "401", "403", "503")}},
        "post": {"operationId": "unleash_frontend_post", "tags": [FRONTEND_TAG], "summary": "Flags for a context",
                 "description": f"{_FRONTEND_DESCRIPTION} The context is in the body.", "security": UNLEASH_SECURITY,
                 "parameters": [_IF_NONE_MATCH],
                 "requestBody": {"required": False, "content": {"application/json": {
                     "schema": _ref("UnleashFrontendRequest"),
                     "example": {"context": {"userId": "user-123", "properties": {"plan": "pro"}}}}}},
                 "responses": {"200": _FRONTEND_200, "304": _NOT_MODIFIED,
                               **_unleash_errors("400", "401", "403", "413", "503")}},
    },
    "/api/frontend/client/register": _write(
        "unleash_frontend_register", FRONTEND_TAG, "Register a frontend SDK", "A frontend SDK announces itself.",
        "UnleashClientRegistration", "UnleashClientRegistration"),
    "/api/frontend/client/metrics": _write(
        "unleash_frontend_metrics", FRONTEND_TAG, "Report frontend usage",
        "How often each flag was evaluated on and off in the browser or app.", "UnleashClientMetrics",
        "UnleashClientMetrics"),
}


def document_flag_apis(result, generator, request, public):
    """OFREP and the Unleash client and frontend APIs (served by ``flags.edge``) in the OpenAPI document."""
    return merge(result, paths={**OFREP_PATHS, **UNLEASH_PATHS}, schemas={**OFREP_SCHEMAS, **UNLEASH_SCHEMAS},
                 security_schemes=SECURITY_SCHEMES, tags=TAGS)
