"""OFREP, Unleash client API and frontend API: shapes, auth and scoping, errors, ETags, caching."""
import json

import pytest

from flags import services
from flags.models import ClientApplication, FeatureFlag, FlagEnvironment, FlagMetricsBucket
from pmrelease.models import AuditEvent

pytestmark = pytest.mark.django_db

VARIANTS = [
    {"name": "blue", "weightType": "variable", "payload": {"type": "json", "value": '{"color": "blue", "n": 1}'},
     "overrides": [{"contextName": "userId", "values": ["u-blue"]}]},
    {"name": "green", "weightType": "variable", "payload": {"type": "string", "value": "green"}},
]


def _post(http, url, body, key=None, **headers):
    if key is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {key}")
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return http.post(url, data=data, content_type="application/json", **headers)


@pytest.fixture
def flags(make_flag):
    make_flag("new-checkout", enabled={"staging": True, "production": True},
              strategies={"staging": [{"name": "flexibleRollout",
                                       "parameters": {"rollout": "100", "stickiness": "default", "groupId": "nc"},
                                       "constraints": [{"contextName": "plan", "operator": "IN",
                                                        "values": ["pro"]}]}]})
    make_flag("theme", enabled={"staging": True}, variants={"staging": VARIANTS}, type="experiment")
    make_flag("staging-only", enabled={"staging": True})
    make_flag("prod-only", enabled={"production": True})


def test_ofrep_flag__boolean_flag_matching_context__value_true_with_reason_and_variant(http, flags, make_key):
    key = make_key("staging")
    response = _post(http, "/ofrep/v1/evaluate/flags/new-checkout", {"context": {"targetingKey": "u1", "plan": "pro"}},
                     key)
    assert response.status_code == 200
    body = response.json()
    assert body["key"] == "new-checkout" and body["value"] is True
    assert body["variant"] == "on" and body["reason"] == "TARGETING_MATCH"
    assert body["metadata"]["environment"] == "staging" and body["metadata"]["flagType"] == "release"


def test_ofrep_flag__context_not_matching__value_false_variant_off(http, flags, make_key):
    body = _post(http, "/ofrep/v1/evaluate/flags/new-checkout", {"context": {"plan": "free"}}, make_key()).json()
    assert body["value"] is False and body["variant"] == "off"


def test_ofrep_flag__disabled_flag__no_value_reason_disabled(http, flags, make_key):
    """OFREP's disabled flag (open-feature/protocol#46): no value, so the provider gives the caller's default."""
    body = _post(http, "/ofrep/v1/evaluate/flags/prod-only", {"context": {}}, make_key("staging")).json()
    assert body == {"key": "prod-only", "reason": "DISABLED", "variant": "disabled",
                    "metadata": {"environment": "staging", "flagType": "release"}}


def test_ofrep_bulk__disabled_flag__listed_without_value(http, flags, make_key):
    body = _post(http, "/ofrep/v1/evaluate/flags", {"context": {}}, make_key("staging")).json()
    by_key = {f["key"]: f for f in body["flags"]}
    assert "value" not in by_key["prod-only"] and by_key["prod-only"]["reason"] == "DISABLED"
    assert by_key["staging-only"]["value"] is True


@pytest.mark.parametrize("method", ["get", "post"])
def test_frontend__disabled_flag__not_listed(http, flags, make_key, method):
    """The frontend API's equivalent: a disabled flag is absent, so the frontend SDKs give the caller's default."""
    key = make_key("staging", "frontend")
    response = getattr(http, method)("/api/frontend", HTTP_AUTHORIZATION=key,
                                     **({"data": "{}", "content_type": "application/json"} if method == "post" else {}))
    names = {t["name"] for t in response.json()["toggles"]}
    assert "prod-only" not in names and "staging-only" in names


def test_ofrep_flag__variants__payload_returned_typed(http, flags, make_key):
    key = make_key()
    body = _post(http, "/ofrep/v1/evaluate/flags/theme", {"context": {"targetingKey": "u-blue"}}, key).json()
    assert body["variant"] == "blue" and body["value"] == {"color": "blue", "n": 1}
    assert body["reason"] == "TARGETING_MATCH"
    seen = {json.dumps(_post(http, "/ofrep/v1/evaluate/flags/theme", {"context": {"targetingKey": f"u{i}"}},
                             key).json()["value"]) for i in range(40)}
    assert '"green"' in seen  # a string payload comes back as the string


def test_ofrep_flag__unknown_flag__404_flag_not_found(http, flags, make_key):
    response = _post(http, "/ofrep/v1/evaluate/flags/nope", {"context": {}}, make_key())
    assert response.status_code == 404
    body = response.json()
    assert body["key"] == "nope" and body["errorCode"] == "FLAG_NOT_FOUND" and "nope" in body["errorDetails"]


@pytest.mark.parametrize("headers", [{}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_X_API_KEY": "wrong"}])
def test_ofrep_flag__missing_or_invalid_key__401(http, flags, headers):
    response = _post(http, "/ofrep/v1/evaluate/flags/new-checkout", {"context": {}}, **headers)
    assert response.status_code == 401 and response.json()["errorDetails"]


def test_ofrep_flag__x_api_key_header__accepted(http, flags, make_key):
    response = _post(http, "/ofrep/v1/evaluate/flags/staging-only", {}, HTTP_X_API_KEY=make_key())
    assert response.status_code == 200 and response.json()["value"] is True


def test_api_key__revoked__401_within_the_process(http, flags, envs):
    key, raw = services.api_key_create(environment=envs["staging"], kind="client")
    assert _post(http, "/ofrep/v1/evaluate/flags/staging-only", {}, raw).status_code == 200
    services.api_key_revoke(key=key, reason="leaked")
    assert _post(http, "/ofrep/v1/evaluate/flags/staging-only", {}, raw).status_code == 401
    event = AuditEvent.objects.get(action="flag.api_key.revoke")
    assert event.before == {"revoked_at": None} and event.after["revoked_at"] and event.reason == "leaked"
    services.api_key_revoke(key=key)
    assert AuditEvent.objects.filter(action="flag.api_key.revoke").count() == 1


def test_api_key__staging_key__never_sees_production(http, flags, make_key):
    staging = make_key("staging", "admin")
    assert _post(http, "/ofrep/v1/evaluate/flags/prod-only", {}, staging).json()["reason"] == "DISABLED"
    assert _post(http, "/ofrep/v1/evaluate/flags/staging-only", {}, staging).json()["value"] is True
    production = make_key("production")
    assert _post(http, "/ofrep/v1/evaluate/flags/prod-only", {}, production).json()["value"] is True
    assert _post(http, "/ofrep/v1/evaluate/flags/staging-only", {}, production).json()["reason"] == "DISABLED"
    features = http.get("/api/client/features", HTTP_AUTHORIZATION=production).json()["features"]
    assert {f["name"]: f["enabled"] for f in features}["staging-only"] is False
    assert {f["name"]: f["enabled"] for f in features}["prod-only"] is True


def test_api_key__frontend_key_on_client_api__403(http, flags, make_key):
    response = http.get("/api/client/features", HTTP_AUTHORIZATION=make_key(kind="frontend"))
    assert response.status_code == 403
    assert http.get("/api/frontend", HTTP_AUTHORIZATION=make_key(kind="client")).status_code == 403


@pytest.mark.parametrize("body, code", [
    ("{not json", "PARSE_ERROR"),
    (b"\xff\xfe", "PARSE_ERROR"),
    ("[1, 2]", "INVALID_CONTEXT"),
    ({"context": "user-1"}, "INVALID_CONTEXT"),
    ({"context": {"plan": {"nested": True}}}, "INVALID_CONTEXT"),
    ({"context": {"targetingKey": 12345}}, "INVALID_CONTEXT"),  # was ignored: evaluated as no user at all
    ({"context": {"targetingKey": True}}, "INVALID_CONTEXT"),
    ({"context": {"targetingKey": "u-1", "currentTime": "yesterday"}}, "INVALID_CONTEXT"),
    ({"context": {"currentTime": 1733000000}}, "INVALID_CONTEXT"),
])
def test_ofrep_flag__malformed_body__400_with_error_code(http, flags, make_key, body, code):
    response = _post(http, "/ofrep/v1/evaluate/flags/new-checkout", body, make_key())
    assert response.status_code == 400
    assert response.json()["errorCode"] == code and response.json()["errorDetails"]


def test_ofrep_flag__iso_current_time__accepted(http, flags, make_key):
    body = {"context": {"targetingKey": "u-1", "currentTime": "2026-12-01T10:00:00Z"}}
    assert _post(http, "/ofrep/v1/evaluate/flags/new-checkout", body, make_key()).status_code == 200


def test_ofrep_bulk__malformed_json__400_parse_error(http, flags, make_key):
    response = _post(http, "/ofrep/v1/evaluate/flags", "{", make_key())
    assert response.status_code == 400 and response.json()["errorCode"] == "PARSE_ERROR"


def test_flag_apis__oversized_body__413(http, flags, make_key, settings):
    settings.FLAGS_MAX_BODY_BYTES = 1000
    big = {"context": {"blob": "x" * 5000}}
    assert _post(http, "/ofrep/v1/evaluate/flags/theme", big, make_key()).status_code == 413
    assert _post(http, "/ofrep/v1/evaluate/flags", big, make_key()).status_code == 413
    assert _post(http, "/api/frontend", big, make_key(kind="frontend")).status_code == 413
    settings.FLAGS_MAX_METRICS_BYTES = 1000
    metrics = {"appName": "a", "bucket": {"toggles": {"x" * 2000: {"yes": 1, "no": 0}}}}
    assert _post(http, "/api/client/metrics", metrics, make_key()).status_code == 413


def test_ofrep__rate_limit_exceeded__429_with_retry_after(http, flags, make_key):
    key = make_key(rate_limit=3)
    statuses = [_post(http, "/ofrep/v1/evaluate/flags/theme", {}, key) for _ in range(5)]
    assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
    assert statuses[-1].status_code == 429 and int(statuses[-1]["Retry-After"]) >= 1
    assert statuses[-1].json()["errorDetails"]


def test_ofrep_bulk__every_flag_and_etag__304_when_unchanged(http, flags, make_key, envs):
    key = make_key()
    first = _post(http, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u1", "plan": "pro"}}, key)
    assert first.status_code == 200
    body = first.json()
    assert {f["key"] for f in body["flags"]} == {"new-checkout", "theme", "staging-only", "prod-only"}
    assert all({"key", "reason", "variant", "metadata"} <= set(f) for f in body["flags"])
    assert all("value" in f for f in body["flags"] if f["reason"] != "DISABLED")
    etag = first["ETag"]
    again = _post(http, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u1", "plan": "pro"}}, key,
                  HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    other_context = _post(http, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u2"}}, key,
                          HTTP_IF_NONE_MATCH=etag)
    assert other_context.status_code == 200
    services.flag_toggle(state=services.state_for(FeatureFlag.objects.get(key="theme"), envs["staging"]),
                         enabled=False)
    changed = _post(http, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u1", "plan": "pro"}}, key,
                    HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_flag_apis__warm__zero_database_queries_per_request(http, flags, make_key, django_assert_num_queries):
    client_key, frontend_key = make_key(), make_key(kind="frontend")
    calls = [  # (request, the status it must answer)
        (lambda: _post(http, "/ofrep/v1/evaluate/flags/new-checkout", {"context": {"plan": "pro"}}, client_key), 200),
        (lambda: _post(http, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u9"}}, client_key), 200),
        (lambda: _post(http, "/ofrep/v1/evaluate/flags/missing", {}, client_key), 404),
        (lambda: http.get("/api/client/features", HTTP_AUTHORIZATION=client_key), 200),
        (lambda: http.get("/api/frontend?userId=5", HTTP_AUTHORIZATION=frontend_key), 200),
        (lambda: _post(http, "/api/frontend", {"context": {"userId": "5"}}, frontend_key), 200),
    ]
    for call, status in calls:  # warm: key lookups and the snapshot build
        assert call().status_code == status
    with django_assert_num_queries(0):
        for _ in range(3):
            for call, status in calls:
                assert call().status_code == status


def test_flag_edit__same_process__seen_by_the_next_request(http, flags, make_key, envs):
    key = make_key()
    assert _post(http, "/ofrep/v1/evaluate/flags/staging-only", {}, key).json()["value"] is True
    flag = FeatureFlag.objects.get(key="staging-only")
    services.flag_toggle(state=services.state_for(flag, envs["staging"]), enabled=False)
    assert _post(http, "/ofrep/v1/evaluate/flags/staging-only", {}, key).json()["reason"] == "DISABLED"


@pytest.mark.django_db(transaction=True)
def test_flag_snapshot__token_published_elsewhere__refreshed_by_the_refresher(flags, envs):
    """Another process's edit: only the database, its change log and the published token change, not this
    process's memory; the refresher's next round brings the one changed flag in."""
    from flags import snapshots

    entry = snapshots.get(envs["staging"].pk)
    assert entry.snapshot.is_enabled("staging-only", {}) and not entry.provisional
    services.flag_toggle(state=services.state_for(FeatureFlag.objects.get(key="staging-only"), envs["staging"]),
                         enabled=False)
    entry.dirty = False  # as in another process: nothing told this one
    assert snapshots.get(envs["staging"].pk) is entry and entry.snapshot.is_enabled("staging-only", {})
    snapshots.refresh_once()
    fresh = snapshots.get(envs["staging"].pk)
    assert fresh is not entry and not fresh.snapshot.is_enabled("staging-only", {})
    assert fresh.revision == entry.revision + 1 and fresh.snapshot.is_enabled("new-checkout", {"properties": {
        "plan": "pro"}})


# --- Unleash client API ------------------------------------------------------------------------------------
@pytest.fixture
def segmented(make_flag, envs):
    segment = services.segment_save(name="beta-testers", constraints=[
        {"contextName": "userId", "operator": "IN", "values": ["1", "2"]}])
    make_flag("beta", enabled={"staging": True}, strategies={"staging": [
        {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": "beta"},
         "constraints": [], "segments": [segment.pk]}]})
    return segment


def test_client_features__spec_4_2__segments_listed_separately(http, segmented, make_key):
    response = http.get("/api/client/features", HTTP_AUTHORIZATION=make_key(), HTTP_UNLEASH_CLIENT_SPEC="5.1.0")
    body = response.json()
    assert body["version"] == 2 and body["segments"] == [segmented.as_unleash()]
    feature = body["features"][0]
    assert feature["strategies"][0]["segments"] == [segmented.pk]
    assert {"name", "type", "enabled", "stale", "impressionData", "project", "strategies", "variants"} <= set(feature)


def test_client_features__old_or_no_spec__segment_constraints_inlined(http, segmented, make_key):
    for headers in ({}, {"HTTP_UNLEASH_CLIENT_SPEC": "4.1.0"}):
        body = http.get("/api/client/features", HTTP_AUTHORIZATION=make_key(), **headers).json()
        assert "segments" not in body
        strategy = body["features"][0]["strategies"][0]
        assert "segments" not in strategy
        assert strategy["constraints"] == segmented.constraints


def test_client_features__unchanged_etag__304(http, segmented, make_key, envs):
    key = make_key()
    first = http.get("/api/client/features", HTTP_AUTHORIZATION=key, HTTP_UNLEASH_CLIENT_SPEC="5.0.0")
    assert first.status_code == 200 and first["ETag"]
    again = http.get("/api/client/features", HTTP_AUTHORIZATION=key, HTTP_UNLEASH_CLIENT_SPEC="5.0.0",
                     HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    services.segment_save(name="beta-testers", constraints=[], segment=segmented)
    changed = http.get("/api/client/features", HTTP_AUTHORIZATION=key, HTTP_UNLEASH_CLIENT_SPEC="5.0.0",
                       HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]


def test_client_metrics__two_posts__aggregated_into_one_bucket_row(http, flags, make_key, envs):
    key = make_key()
    body = {"appName": "web", "instanceId": "i1", "bucket": {
        "start": "2025-01-01T10:00:00Z", "stop": "2025-01-01T10:01:00Z",
        "toggles": {"theme": {"yes": 3, "no": 1, "variants": {"blue": 2, "green": 1}}}}}
    for _ in range(2):
        assert _post(http, "/api/client/metrics", body, HTTP_AUTHORIZATION=key).status_code == 202
    row = FlagMetricsBucket.objects.get(flag_key="theme", environment=envs["staging"])
    assert (row.yes, row.no, row.variants) == (6, 2, {"blue": 4, "green": 2})
    assert FlagEnvironment.objects.get(flag__key="theme", environment=envs["staging"]).last_seen_at


@pytest.mark.parametrize("body", ["{", {"appName": "x"}, {"bucket": {"toggles": {"a": {"yes": -1}}}},
                                  {"bucket": {"toggles": {"a": "lots"}}}, [1]])
def test_client_metrics__malformed__400_with_message(http, flags, make_key, body):
    response = _post(http, "/api/client/metrics", body, HTTP_AUTHORIZATION=make_key())
    assert response.status_code == 400 and response.json()["message"]


def test_client_register__valid__202_and_recorded(http, flags, make_key):
    body = {"appName": "web", "instanceId": "i1", "sdkVersion": "unleash-client-python:6.9.1",
            "strategies": ["default"], "started": "2025-01-01T10:00:00Z", "interval": 15000}
    assert _post(http, "/api/client/register", body, HTTP_AUTHORIZATION=make_key()).status_code == 202
    assert ClientApplication.objects.get(app_name="web").sdk_version.startswith("unleash")
    assert _post(http, "/api/client/register", {"x": 1}, HTTP_AUTHORIZATION=make_key()).status_code == 400


@pytest.mark.parametrize("counts, stop", [
    ({"yes": 2 ** 70, "no": 0}, "2024-01-01T00:01:00Z"),
    ({"yes": 1, "no": 0, "variants": {"a": 2 ** 63}}, "2024-01-01T00:01:00Z"),
    ({"yes": 1, "no": 0}, "0001-01-01T00:00:00+14:00"),
])
def test_client_metrics__out_of_range_count_or_time__400(http, make_key, envs, counts, stop):
    raw = make_key("staging")
    body = {"appName": "a", "bucket": {"start": "2024-01-01T00:00:00Z", "stop": stop, "toggles": {"f": counts}}}
    response = _post(http, "/api/client/metrics", body, raw)
    assert response.status_code == 400, response.content
    assert not FlagMetricsBucket.objects.exists()


@pytest.mark.parametrize("data", [{"appName": "a", "interval": 2 ** 70}, {"appName": "a", "interval": -1},
                                  {"appName": "a", "started": "0001-01-01T00:00:00+14:00"}])
def test_client_register__out_of_range_interval_or_started__400(http, make_key, envs, data):
    response = _post(http, "/api/client/register", data, make_key("staging"))
    assert response.status_code == 400, response.content


def test_client_features__huge_client_spec_header__served(http, make_flag, make_key, envs):
    make_flag("f")
    response = http.get("/api/client/features", HTTP_AUTHORIZATION=make_key("staging"),
                        HTTP_UNLEASH_CLIENT_SPEC="9" * 5000)
    assert response.status_code == 200 and "segments" in response.json()


# --- frontend API --------------------------------------------------------------------------------------------
def test_frontend__get_and_post__enabled_toggles_for_the_context(http, flags, make_key):
    key = make_key(kind="frontend")
    names = {t["name"] for t in http.get("/api/frontend?plan=pro&userId=7", HTTP_AUTHORIZATION=key).json()["toggles"]}
    assert names == {"new-checkout", "theme", "staging-only"}
    body = _post(http, "/api/frontend", {"context": {"userId": "u-blue", "properties": {"plan": "free"}}},
                 HTTP_AUTHORIZATION=key).json()
    toggles = {t["name"]: t for t in body["toggles"]}
    assert set(toggles) == {"theme", "staging-only"}
    assert toggles["theme"]["variant"]["name"] == "blue" and toggles["theme"]["variant"]["enabled"] is True
    assert _post(http, "/api/frontend", "nope", HTTP_AUTHORIZATION=key).status_code == 400


def test_frontend__unsupported_method__405_not_500(http, flags, make_key):
    assert http.delete("/api/frontend", HTTP_AUTHORIZATION=make_key(kind="frontend")).status_code == 405
    assert http.get("/ofrep/v1/evaluate/flags/theme").status_code == 405


def test_frontend_api__properties_plain_and_bracketed__answers_200(http, make_flag, make_key):
    make_flag("f", enabled={"staging": True})
    raw = make_key("staging", "frontend")
    response = http.get("/api/frontend?properties=foo&properties[x]=1", HTTP_AUTHORIZATION=raw)
    assert response.status_code == 200
    response = http.get("/api/frontend?properties[x]=1&properties=foo", HTTP_AUTHORIZATION=raw)
    assert response.status_code == 200


def test_flag_apis__cors_preflight__allowed(http):
    response = http.options("/ofrep/v1/evaluate/flags/x", HTTP_ORIGIN="https://app.example.com")
    assert response.status_code == 204 and response["Access-Control-Allow-Origin"] == "*"


def test_ofrep__evaluations__counted_in_memory_and_flushed_aggregated(http, flags, make_key, envs):
    from flags import usage

    key = make_key()
    for _ in range(3):
        _post(http, "/ofrep/v1/evaluate/flags/staging-only", {}, key)
    assert usage.flush() == 1
    row = FlagMetricsBucket.objects.get(flag_key="staging-only", environment=envs["staging"])
    assert (row.yes, row.no) == (3, 0)
