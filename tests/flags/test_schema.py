"""OFREP and the Unleash client and frontend APIs in the served OpenAPI document (flags.schema), and the edge's
real answers validated against the schemas it documents."""
import json

import pytest

from tests.openapi_support import assert_documented, assert_invalid, served_schema

pytestmark = pytest.mark.django_db

OFREP_FLAG = "/ofrep/v1/evaluate/flags/{key}"
OFREP_BULK = "/ofrep/v1/evaluate/flags"
VARIANTS = [
    {"name": "blue", "weight": 500, "weightType": "variable", "stickiness": "default",
     "payload": {"type": "json", "value": '{"color": "blue"}'},
     "overrides": [{"contextName": "userId", "values": ["u-blue"]}]},
    {"name": "green", "weight": 500, "weightType": "variable", "stickiness": "default",
     "payload": {"type": "number", "value": "7"}},
]


@pytest.fixture
def document(http, users):
    return served_schema(http, users["dev"])


@pytest.fixture
def flags(make_flag, used_segment):
    """Boolean, variant (json and number payloads), targeted, disabled and dependent flags in staging (plus "f",
    which uses a segment)."""
    parent = make_flag("new-checkout", enabled={"staging": True}, strategies={"staging": [
        {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": "nc"},
         "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}]})
    make_flag("theme", enabled={"staging": True}, variants={"staging": VARIANTS}, type="experiment")
    make_flag("dark-mode", enabled={"staging": False})
    make_flag("child", enabled={"staging": True}, parent=parent, parent_enabled=True)


def _post(http, url, body, key=None, **headers):
    if key is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {key}")
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return http.post(url, data=data, content_type="application/json", **headers)


def test_openapi_schema__served__valid_openapi_3_with_the_flag_apis(document):
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert paths[OFREP_FLAG]["post"]["operationId"] == "evaluateFlag"
    assert paths[OFREP_BULK]["post"]["operationId"] == "evaluateFlagsBulk"
    for path, method in (("/api/client/features", "get"), ("/api/client/register", "post"),
                         ("/api/client/metrics", "post"), ("/api/frontend", "get"), ("/api/frontend", "post"),
                         ("/api/frontend/client/register", "post"), ("/api/frontend/client/metrics", "post")):
        operation = paths[path][method]
        assert operation["tags"] and operation["security"], (method, path)
        assert "200" in operation["responses"] or "202" in operation["responses"]
    schemas = document["components"]["schemas"]
    for name in ("EvaluationRequest", "EvaluationContext", "ServerEvaluationSuccess", "EvaluationSuccess",
                 "EvaluationFailure", "FlagNotFound", "BulkEvaluationSuccess", "BulkEvaluationFailure",
                 "GeneralErrorResponse", "UnleashClientFeatures", "UnleashFeature", "UnleashStrategy",
                 "UnleashClientRegistration", "UnleashClientMetrics", "UnleashFrontendFeatures"):
        assert name in schemas, name
    assert schemas["EvaluationSuccess"]["properties"]["reason"]["enum"] == [
        "STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["flagKeyBearer"] == {**schemes["flagKeyBearer"], "type": "http", "scheme": "bearer"}
    assert (schemes["flagKeyHeader"]["in"], schemes["flagKeyHeader"]["name"]) == ("header", "X-API-Key")
    assert (schemes["flagKeyAuthorization"]["in"], schemes["flagKeyAuthorization"]["name"]) == (
        "header", "Authorization")
    bulk = paths[OFREP_BULK]["post"]
    assert "304" in bulk["responses"] and "ETag" in bulk["responses"]["200"]["headers"]
    assert any(p["name"] == "If-None-Match" and p["in"] == "header" for p in bulk["parameters"])
    assert "Retry-After" in bulk["responses"]["429"]["headers"]
    assert {t["name"] for t in document["tags"]} >= {"OFREP", "Unleash client API", "Unleash frontend API"}
    # the examples are answers the schemas accept
    example = paths[OFREP_FLAG]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    assert example["reason"] == "TARGETING_MATCH"


def test_ofrep_schemas__disabled_with_a_value_or_success_without__refused(document):
    """The DISABLED answer carries no value, every other success one: the schema says both."""
    assert_invalid(document, "EvaluationSuccess", {"key": "f", "reason": "DISABLED", "variant": "disabled",
                                                   "value": False})
    assert_invalid(document, "EvaluationSuccess", {"key": "f", "reason": "STATIC", "variant": "on"})
    assert_invalid(document, "EvaluationSuccess", {"key": "f", "reason": "MAYBE", "variant": "on", "value": 1})


def test_ofrep_single__real_answers__match_the_documented_schemas(http, document, flags, make_key, settings):
    key = make_key("staging")
    bodies = {}
    for flag, context in (("new-checkout", {"targetingKey": "u1", "plan": "pro"}), ("new-checkout", {}),
                          ("theme", {"targetingKey": "u1"}), ("theme", {"targetingKey": "u-blue"}),
                          ("dark-mode", {}), ("child", {"targetingKey": "u1", "plan": "pro"}), ("f", {"plan": "pro"})):
        response = _post(http, f"/ofrep/v1/evaluate/flags/{flag}", {"context": context}, key)
        assert response.status_code == 200
        bodies[flag, json.dumps(context)] = assert_documented(document, OFREP_FLAG, "post", response)
    assert {b["reason"] for b in bodies.values()} >= {"TARGETING_MATCH", "DISABLED"}
    assert any(isinstance(b.get("value"), dict) for b in bodies.values())
    # not found, bad context, not JSON, no key, a revoked key, the rate limit
    cases = [
        (_post(http, "/ofrep/v1/evaluate/flags/no-such-flag", {"context": {}}, key), 404),
        (_post(http, "/ofrep/v1/evaluate/flags/new-checkout", {"context": {"plan": {"x": 1}}}, key), 400),
        (_post(http, "/ofrep/v1/evaluate/flags/new-checkout", "{not json", key), 400),
        (_post(http, "/ofrep/v1/evaluate/flags/new-checkout", {"context": "x"}, key), 400),
        (_post(http, "/ofrep/v1/evaluate/flags/new-checkout", {"context": {}}), 401),
        (_post(http, "/ofrep/v1/evaluate/flags/new-checkout", {"context": {}}, "nope"), 401),
    ]
    for response, status in cases:
        assert response.status_code == status, response.content
        body = assert_documented(document, OFREP_FLAG, "post", response)
        assert body.get("errorDetails")
    settings.FLAGS_RATE_LIMIT = 1
    limited = make_key("staging")
    statuses = [_post(http, "/ofrep/v1/evaluate/flags/dark-mode", {"context": {}}, limited) for _ in range(3)]
    assert statuses[-1].status_code == 429
    assert_documented(document, OFREP_FLAG, "post", statuses[-1])


def test_ofrep_bulk__real_answers__match_the_documented_schemas(http, document, flags, make_key):
    key = make_key("staging", "frontend")
    response = _post(http, OFREP_BULK, {"context": {"targetingKey": "u1", "plan": "pro"}}, key)
    body = assert_documented(document, OFREP_BULK, "post", response)
    assert {f["key"] for f in body["flags"]} >= {"new-checkout", "theme", "dark-mode", "child", "f"}
    assert any("value" not in f and f["reason"] == "DISABLED" for f in body["flags"])
    again = _post(http, OFREP_BULK, {"context": {"targetingKey": "u1", "plan": "pro"}}, key,
                  HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert_documented(document, OFREP_BULK, "post", again)
    for bad in ({"context": {"currentTime": "yesterday"}}, "[1, 2]", b"\xff{"):
        refused = _post(http, OFREP_BULK, bad, key)
        assert refused.status_code == 400
        assert assert_documented(document, OFREP_BULK, "post", refused)["errorCode"] in {"INVALID_CONTEXT",
                                                                                         "PARSE_ERROR"}
    assert_documented(document, OFREP_BULK, "post", _post(http, OFREP_BULK, {}, None, HTTP_X_API_KEY="wrong"))


@pytest.mark.parametrize("spec", ["", "4.3.1"])
def test_unleash_client_features__real_answers__match_the_documented_schemas(http, document, flags, make_key,
                                                                             spec):
    path = "/api/client/features"
    key = make_key("staging")
    headers = {"HTTP_AUTHORIZATION": key, "HTTP_UNLEASH_APPNAME": "checkout"}
    if spec:
        headers["HTTP_UNLEASH_CLIENT_SPEC"] = spec
    response = http.get(path, **headers)
    body = assert_documented(document, path, "get", response)
    assert bool(body.get("segments")) == bool(spec)
    theme = next(f for f in body["features"] if f["name"] == "theme")
    assert theme["variants"][0]["payload"]["type"] == "json"
    assert assert_documented(document, path, "get", http.get(path, {"namePrefix": "the"}, **headers))["features"]
    assert_documented(document, path, "get", http.get(path, HTTP_IF_NONE_MATCH=response["ETag"], **headers))
    assert http.get(path, HTTP_IF_NONE_MATCH=response["ETag"], **headers).status_code == 304
    assert_documented(document, path, "get", http.get(path))  # 401
    refused = http.get(path, HTTP_AUTHORIZATION=make_key("staging", "frontend"))
    assert refused.status_code == 403
    assert_documented(document, path, "get", refused)


@pytest.mark.parametrize("prefix", ["/api/client", "/api/frontend/client"])
def test_unleash_register_and_metrics__real_answers__match_the_documented_schemas(http, document, flags, make_key,
                                                                                 prefix):
    key = make_key("staging", "client" if prefix == "/api/client" else "frontend")
    for name in ("register", "metrics"):
        path = f"{prefix}/{name}"
        example = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]
        accepted = _post(http, path, example, HTTP_AUTHORIZATION=key)
        assert accepted.status_code == 202, accepted.content
        assert_documented(document, path, "post", accepted)
        refused = _post(http, path, {"bucket": "x", "interval": -1}, HTTP_AUTHORIZATION=key)
        assert refused.status_code == 400
        assert_documented(document, path, "post", refused)
        assert_documented(document, path, "post", _post(http, path, "{", HTTP_AUTHORIZATION=key))
        assert_documented(document, path, "post", _post(http, path, example))  # 401


@pytest.mark.parametrize("method", ["get", "post"])
def test_unleash_frontend__real_answers__match_the_documented_schemas(http, document, flags, make_key, method):
    path = "/api/frontend"
    key = make_key("staging", "frontend")

    def call(context, **headers):
        if method == "get":
            query = {("properties[plan]" if name == "plan" else name): value for name, value in context.items()}
            return http.get(path, query, **headers)
        return _post(http, path, {"context": context}, **headers)

    response = call({"userId": "u1", "plan": "pro"}, HTTP_AUTHORIZATION=key)
    body = assert_documented(document, path, method, response)
    toggles = {t["name"]: t for t in body["toggles"]}
    assert {"new-checkout", "theme", "child"} <= set(toggles) and "dark-mode" not in toggles
    assert "payload" in toggles["theme"]["variant"]
    not_modified = call({"userId": "u1", "plan": "pro"}, HTTP_AUTHORIZATION=key, HTTP_IF_NONE_MATCH=response["ETag"])
    assert not_modified.status_code == 304
    assert_documented(document, path, method, not_modified)
    bad = call({"currentTime": "not a time"}, HTTP_AUTHORIZATION=key)
    assert bad.status_code == 400
    assert_documented(document, path, method, bad)
    forbidden = call({}, HTTP_AUTHORIZATION=make_key("staging", "client"))
    assert forbidden.status_code == 403
    assert_documented(document, path, method, forbidden)
