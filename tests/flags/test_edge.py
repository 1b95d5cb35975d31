"""The flag edge (flags.edge): the portal's WSGI entry sends the flag APIs to it without Django's request cycle;
it answers exactly as through Django (keys, scoping, limits, error bodies, security headers); deep JSON is a 400."""
import io
import json

import pytest
from django.core.signals import request_started

from flags import edge, services

pytestmark = pytest.mark.django_db


def call(app, method, path, body=None, headers=None, query=""):
    """Call a WSGI application in this thread: (status, headers, body bytes)."""
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path.encode().decode("latin-1"), "QUERY_STRING": query,
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)),
               "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "127.0.0.1"}
    environ.update(headers or {})
    captured = {}

    def start_response(status, response_headers):
        captured["status"], captured["headers"] = int(status.split()[0]), dict(response_headers)

    data = b"".join(app(environ, start_response))
    return captured["status"], captured["headers"], data


@pytest.fixture
def portal_app():
    from pmrelease.wsgi import application

    return application


@pytest.fixture
def flags(make_flag):
    make_flag("on", enabled={"staging": True})
    make_flag("off", enabled={"staging": False})
    make_flag("banner", enabled={"staging": True}, variants={"staging": [
        {"name": "short", "weightType": "fix", "weight": 1000, "payload": {"type": "string", "value": "Hi"}}]})


@pytest.fixture
def key(make_key):
    return make_key("staging", "admin")


def test_portal_wsgi__flag_paths__answered_by_the_edge_without_django(portal_app, flags, key):
    started = []

    def count(**kwargs):
        started.append(1)

    request_started.connect(count)
    try:
        status, headers, body = call(portal_app, "POST", "/ofrep/v1/evaluate/flags/on", {"context": {}},
                                     {"HTTP_AUTHORIZATION": f"Bearer {key}"})
        assert status == 200 and json.loads(body)["value"] is True and not started
        status, _, _ = call(portal_app, "GET", "/api/client/features", headers={"HTTP_AUTHORIZATION": key})
        assert status == 200 and not started
        status, _, _ = call(portal_app, "GET", "/healthz")
        assert status == 200 and started  # every other path: Django
    finally:
        request_started.disconnect(count)


CASES = [
    ("POST", "/ofrep/v1/evaluate/flags/on", {"context": {"targetingKey": "u"}}, "key"),
    ("POST", "/ofrep/v1/evaluate/flags/off", {"context": {}}, "key"),
    ("POST", "/ofrep/v1/evaluate/flags/banner", {"context": {}}, "key"),
    ("POST", "/ofrep/v1/evaluate/flags/nope", {"context": {}}, "key"),
    ("POST", "/ofrep/v1/evaluate/flags/on", {"context": {}}, None),
    ("POST", "/ofrep/v1/evaluate/flags/on", {"context": {}}, "wrong"),
    ("POST", "/ofrep/v1/evaluate/flags/on", b"{not json", "key"),
    ("POST", "/ofrep/v1/evaluate/flags/on", {"context": {"targetingKey": 5}}, "key"),
    ("GET", "/ofrep/v1/evaluate/flags/on", None, "key"),
    ("POST", "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u"}}, "key"),
    ("GET", "/api/client/features", None, "raw"),
    ("GET", "/api/frontend", None, "raw"),
    ("POST", "/api/frontend", {"context": {"userId": "1"}}, "raw"),
    ("POST", "/api/client/metrics", {"bucket": "x"}, "raw"),
    ("POST", "/api/client/register", {"appName": ""}, "raw"),
]


@pytest.mark.parametrize("method, path, body, auth", CASES, ids=[f"{m} {p} {a}" for m, p, _b, a in CASES])
def test_edge__every_case__same_answer_as_through_django(portal_app, http, flags, key, method, path, body, auth):
    headers = {}
    if auth == "key":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    elif auth == "raw":
        headers["HTTP_AUTHORIZATION"] = key
    elif auth:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {auth}"
    status, response_headers, data = call(portal_app, method, path, body, headers)
    kwargs = {"data": body if isinstance(body, bytes) else json.dumps(body), "content_type": "application/json"} \
        if body is not None else {}
    through_django = getattr(http, method.lower())(path, **kwargs, **headers)
    assert status == through_django.status_code
    assert data == through_django.content
    for name in ("Content-Type", "ETag", "Allow", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert response_headers.get(name) == through_django.headers.get(name), name


def test_edge__rate_limit__429_with_retry_after(portal_app, flags, make_key):
    limited = make_key("staging", "client", rate_limit=2)
    answers = [call(portal_app, "POST", "/ofrep/v1/evaluate/flags/on", {}, {"HTTP_AUTHORIZATION": limited})
               for _ in range(4)]
    assert [a[0] for a in answers][-1] == 429 and answers[-1][1]["Retry-After"] == "1"


def test_edge__oversized_body__413(portal_app, flags, key, settings):
    settings.FLAGS_MAX_BODY_BYTES = 100
    status, _, body = call(portal_app, "POST", "/ofrep/v1/evaluate/flags/on", {"context": {"x": "y" * 200}},
                           {"HTTP_AUTHORIZATION": key})
    assert status == 413 and b"larger than 100 bytes" in body


def test_edge__host_not_allowed__400(portal_app, flags, key):
    status, _, body = call(portal_app, "POST", "/ofrep/v1/evaluate/flags/on", {},
                           {"HTTP_AUTHORIZATION": key, "HTTP_HOST": "evil.example"})
    assert status == 400 and b"ALLOWED_HOSTS" in body
    assert json.loads(body) == {"key": "on", "errorCode": "GENERAL", "errorDetails": json.loads(body)["errorDetails"]}
    status, _, body = call(portal_app, "POST", "/ofrep/v1/evaluate/flags", {},
                           {"HTTP_AUTHORIZATION": key, "HTTP_HOST": "evil.example"})
    assert status == 400 and json.loads(body)["errorCode"] == "GENERAL" and "key" not in json.loads(body)
    status, _, body = call(portal_app, "GET", "/api/client/features", None,
                           {"HTTP_AUTHORIZATION": key, "HTTP_HOST": "evil.example"})
    assert status == 400 and set(json.loads(body)) == {"errorDetails"}  # Unleash: its own error shape


def test_edge__ssl_redirect_and_hsts__as_django_security_middleware(portal_app, flags, key, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    status, headers, _ = call(portal_app, "POST", "/ofrep/v1/evaluate/flags/on", {}, {"HTTP_AUTHORIZATION": key},
                              query="a=1")
    assert status == 301 and headers["Location"] == "https://127.0.0.1/ofrep/v1/evaluate/flags/on?a=1"
    status, headers, _ = call(portal_app, "POST", "/ofrep/v1/evaluate/flags/on", {},
                              {"HTTP_AUTHORIZATION": key, "HTTP_X_FORWARDED_PROTO": "https"})
    assert status == 200 and headers["Strict-Transport-Security"].startswith("max-age=3600")
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert headers["X-Request-ID"]


def test_edge__cors_preflight__allowed_origin(portal_app):
    status, headers, _ = call(portal_app, "OPTIONS", "/api/frontend", headers={"HTTP_ORIGIN": "https://app.example"})
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"


def _deep(levels=990):
    return ("[" * levels + "]" * levels).encode()


DEEP = [("/ofrep/v1/evaluate/flags/on", "key"), ("/ofrep/v1/evaluate/flags", "key"),
        ("/api/client/metrics", "raw"), ("/api/client/register", "raw"), ("/api/frontend", "raw")]


@pytest.mark.parametrize("path, auth", DEEP)
def test_flag_apis__json_nested_990_levels__400_not_a_recursion_error(portal_app, http, flags, key, path, auth):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}" if auth == "key" else key}
    for depth in (990, 65):
        status, _, body = call(portal_app, "POST", path, _deep(depth), headers)
        assert status == 400 and b"nests more than 64 levels" in body, (depth, body)
        response = http.post(path, data=_deep(depth), content_type="application/json", **headers)
        assert response.status_code == 400 and b"nests more than 64 levels" in response.content
    nested = {"context": {"targetingKey": "u", "properties": {}}}
    status, _, _ = call(portal_app, "POST", "/ofrep/v1/evaluate/flags/on", nested, {"HTTP_AUTHORIZATION": key})
    assert status == 200


def test_parse_json__depth__64_levels_accepted_65_refused():
    assert edge.parse_json(b"[" * 64 + b"]" * 64) is not None
    with pytest.raises(ValueError, match="nests more than 64"):
        edge.parse_json(b"[" * 65 + b"]" * 65)
    text = json.dumps({"a": "[" * 100}).encode()
    assert edge.parse_json(text) == {"a": "[" * 100}  # brackets inside strings are text


def test_standalone_edge__health_readiness_and_other_paths(flags, key):
    status, _, body = call(edge.application, "GET", "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = call(edge.application, "GET", "/readyz")
    assert status == 200 and json.loads(body) == {"status": "ok", "stale": False}
    status, _, body = call(edge.application, "GET", "/admin/")
    assert status == 404 and b"no flag API" in body
    status, _, body = call(edge.application, "POST", "/ofrep/v1/evaluate/flags/on", {}, {"HTTP_AUTHORIZATION": key})
    assert status == 200 and json.loads(body)["value"] is True


def test_edge__utf8_flag_name__in_the_path(portal_app, envs, key):
    services.flags_import(environment=envs["staging"], by="import_flags", doc={"features": [
        {"name": "Feature.UTF-8.😊_φriend", "enabled": True, "strategies": []}]})
    status, _, body = call(portal_app, "POST", "/ofrep/v1/evaluate/flags/Feature.UTF-8.😊_φriend", {},
                           {"HTTP_AUTHORIZATION": key})
    assert status == 200 and json.loads(body)["key"] == "Feature.UTF-8.😊_φriend"
