"""The flag edge: OFREP and the Unleash client and frontend APIs as a plain WSGI application.

No Django request/response cycle, middleware or ORM on the hot path: a request is answered from the compiled
snapshots and the API-key table of ``flags.snapshots`` (kept current by their refresher thread). It is the one
implementation of these APIs, reached three ways:

- inside the portal: ``pmrelease/wsgi.py`` wraps Django with :func:`mount` (named in ``settings.WSGI_MOUNTS``),
  which sends these paths here and every other path to Django;
- as its own process, scaled on its own like Unleash Edge: ``gunicorn flags.edge:application`` (see ``deploy/``),
  which answers only these paths plus ``/healthz`` and ``/readyz``;
- through Django's URLs (``flags.views``), for the test client and anything that calls Django directly.

Security is what Django would give these paths: the same keys and scoping, body limits, rate limit and error
bodies, the host checked against ``ALLOWED_HOSTS``, ``SECURE_SSL_REDIRECT``, and the headers of Django's
security and clickjacking middleware. The SDKs' registration and metrics posts are written through the services
(they need the database; everything else keeps answering without it, marked stale).
"""
import os

from django.conf import settings

STANDALONE = not settings.configured  # run as its own process: gunicorn flags.edge:application
if STANDALONE:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")
    django.setup()

import hashlib  # noqa: E402 (Django is set up first when this module is the entry point)
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from urllib.parse import parse_qsl  # noqa: E402

from django.core.signals import setting_changed  # noqa: E402
from django.db import DatabaseError  # noqa: E402
from django.http.request import split_domain_port, validate_host  # noqa: E402

from pmrelease import errors  # noqa: E402

from . import services, snapshots, usage  # noqa: E402
from .context import unleash_context  # noqa: E402
from .engine import DISABLED, decode_payload  # noqa: E402
from .models import ApiKeyKind  # noqa: E402

logger = logging.getLogger(__name__)

CLIENT_KINDS = frozenset({ApiKeyKind.CLIENT, ApiKeyKind.ADMIN})
FRONTEND_KINDS = frozenset({ApiKeyKind.FRONTEND, ApiKeyKind.ADMIN})
OFREP_KINDS = frozenset({ApiKeyKind.CLIENT, ApiKeyKind.FRONTEND, ApiKeyKind.ADMIN})
MAX_JSON_DEPTH = 64
OFREP_FLAG_PREFIX = "/ofrep/v1/evaluate/flags/"
_JSON = "application/json"
_REASONS = {200: "OK", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 304: "Not Modified",
            400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 413: "Payload Too Large", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}
_STATUS_LINES = {code: f"{code} {text}" for code, text in _REASONS.items()}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Refused(Exception):
    """An answer other than success: status, JSON body, extra headers."""

    def __init__(self, status, body, headers=()):
        self.status = status
        self.body = body
        self.headers = list(headers)


# --- configuration (read once from settings; again when a setting changes in tests) --------------------------
_config = {}


def _settings():
    if not _config:
        hsts = ""
        if settings.SECURE_HSTS_SECONDS:
            hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
            if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
                hsts += "; includeSubDomains"
            if settings.SECURE_HSTS_PRELOAD:
                hsts += "; preload"
        static = []
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            static.append(("X-Content-Type-Options", "nosniff"))
        if settings.SECURE_REFERRER_POLICY:
            policy = settings.SECURE_REFERRER_POLICY
            static.append(("Referrer-Policy", policy if isinstance(policy, str) else ",".join(policy)))
        if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
            static.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
        static.append(("X-Frame-Options", settings.X_FRAME_OPTIONS))
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = [".localhost", "127.0.0.1", "[::1]"]
        proxy = settings.SECURE_PROXY_SSL_HEADER
        _config.update(
            static=static, hsts=hsts, allowed_hosts=allowed, hosts={}, proxy_ssl=proxy,
            redirect=settings.SECURE_SSL_REDIRECT, redirect_host=settings.SECURE_SSL_HOST,
            forwarded_host=settings.USE_X_FORWARDED_HOST, forwarded_port=settings.USE_X_FORWARDED_PORT,
            origins=frozenset(settings.FLAGS_CORS_ORIGINS), rate=int(settings.FLAGS_RATE_LIMIT),
            body_limit=int(settings.FLAGS_MAX_BODY_BYTES), metrics_limit=int(settings.FLAGS_MAX_METRICS_BYTES),
        )
    return _config


def _forget_settings(**kwargs):
    _config.clear()


setting_changed.connect(_forget_settings, dispatch_uid="flags.edge.settings")


# --- the request -------------------------------------------------------------------------------------------
class Request:
    __slots__ = ("environ", "method", "path", "_body", "_query")

    def __init__(self, environ, body=None, path=None):
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        if path is None:
            path = environ.get("PATH_INFO", "") or "/"
            if not path.isascii():  # WSGI strings carry the bytes as latin-1; the path is UTF-8
                path = path.encode("latin-1", "replace").decode("utf-8", "replace")
        self.path = path
        self._body = body  # a callable giving the whole body (Django's request.body) or None: read wsgi.input
        self._query = None

    def header(self, name, default=""):
        return self.environ.get(name, default)

    @property
    def query(self):
        if self._query is None:
            try:
                self._query = dict(parse_qsl(self.environ.get("QUERY_STRING", ""), keep_blank_values=True,
                                             max_num_fields=1000))
            except ValueError as exc:
                raise Refused(400, {"errorDetails": f"the query string is not valid: {exc}"}) from None
        return self._query

    def read(self, limit, error):
        """The body bytes; 413 (``error``) when larger than ``limit``."""
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            raise error(413, f"the request body is larger than {limit} bytes")
        if self._body is not None:
            try:
                raw = self._body()
            except OSError as exc:
                raise error(400, f"the request body could not be read: {exc}", "PARSE_ERROR") from None
            except Exception as exc:  # Django's RequestDataTooBig and friends
                raise error(413, f"the request body could not be accepted: {exc}") from None
        else:
            stream = self.environ.get("wsgi.input")
            chunked = "chunked" in self.environ.get("HTTP_TRANSFER_ENCODING", "").lower()
            try:
                raw = stream.read(length) if length and stream else stream.read(limit + 1) if chunked else b""
            except OSError as exc:
                raise error(400, f"the request body could not be read: {exc}", "PARSE_ERROR") from None
        if len(raw) > limit:
            raise error(413, f"the request body is larger than {limit} bytes")
        return raw


def _too_deep(data, limit=MAX_JSON_DEPTH):
    """Whether ``data`` nests containers more than ``limit`` levels deep (iterative: no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json(raw):
    """Parse a JSON body (None when empty). ValueError saying what is wrong: not JSON, or nested more than
    MAX_JSON_DEPTH levels (checked without recursion, so a deeply nested body is a 400, never a 500)."""
    if not raw.strip():
        return None
    try:
        try:
            text = raw.decode()  # JSON on the wire is UTF-8; anything else is left to json's detection
        except UnicodeDecodeError:
            text = raw
        data = json.loads(text)
    except RecursionError:
        raise ValueError(f"the request body nests more than {MAX_JSON_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the request body is not valid JSON: {exc}") from None
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _too_deep(data):
        raise ValueError(f"the request body nests more than {MAX_JSON_DEPTH} levels deep")
    return data


def _json_body(request, limit, error):
    raw = request.read(limit, error)
    try:
        return parse_json(raw)
    except ValueError as exc:
        raise error(400, str(exc), "PARSE_ERROR") from None


def _context_etag(entry, ctx):
    digest = hashlib.blake2b((entry.token + _encode(sorted(ctx.items(), key=lambda i: i[0]))
                              + _encode(sorted(ctx.get("properties", {}).items()))).encode(),
                             digest_size=12).hexdigest()
    return f'"{digest}"'


def _etag_matches(request, etag):
    header = request.header("HTTP_IF_NONE_MATCH")
    if not header:
        return False
    candidates = [c.strip() for c in header.split(",")]
    return etag in candidates or f"W/{etag}" in candidates or "*" in candidates


# --- authentication and limits ------------------------------------------------------------------------------
def _raw_key(request):
    header = request.header("HTTP_AUTHORIZATION").strip()
    if header[:7].lower() == "bearer ":
        header = header[7:].strip()
    return header or request.header("HTTP_X_API_KEY").strip()


def _authenticate(request, kinds, error):
    raw = _raw_key(request)
    if not raw:
        raise error(401, "an API key is required (Authorization: Bearer <key> or X-API-Key)")
    info = snapshots.lookup_key(raw)
    if info is None:
        raise error(401, "the API key is invalid or revoked")
    if info.kind not in kinds:
        raise error(403, f"a {info.kind} key cannot use this API")
    return info


_buckets: dict = {}
_bucket_lock = threading.Lock()


def _rate_limit(info, error):
    """A per-key token bucket in each process: ``rate`` requests per second, bursts up to one second's worth."""
    rate = info.rate_limit or _settings()["rate"]
    if rate <= 0:
        return
    now = time.monotonic()
    with _bucket_lock:
        tokens, last = _buckets.get(info.id, (float(rate), now))
        tokens = min(float(rate), tokens + (now - last) * rate)
        if tokens < 1.0:
            _buckets[info.id] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / rate))
            raise error(429, f"rate limit of {rate} requests per second exceeded", headers=[("Retry-After", str(retry))])
        _buckets[info.id] = (tokens - 1.0, now)


# --- OFREP --------------------------------------------------------------------------------------------------
def _ofrep_errors(key=None):
    def error(status, details, code=None, headers=()):
        if status == 400:
            body = {"errorCode": code or "INVALID_CONTEXT", "errorDetails": details}
            return Refused(400, body if key is None else {"key": key, **body}, headers)
        return Refused(status, {"errorDetails": details}, headers)

    return error


def _ofrep_answer(entry, key, evaluation):
    """The serialised OFREP success for an evaluation, counted for usage. Answers depend only on what was
    decided, so each one is serialised once per snapshot (the snapshot's ``answers``)."""
    usage.record(entry.environment_id, key, evaluation.enabled,
                 evaluation.variant if evaluation.variant_enabled else None)
    decided = (key, evaluation.reason, evaluation.enabled, evaluation.variant, evaluation.variant_enabled,
               evaluation.strategy_index)
    answers = entry.answers
    data = answers.get(decided)
    if data is None:
        data = _encode(_ofrep_result(entry, key, evaluation)).encode()
        if len(answers) < 50_000:
            answers[decided] = data
    return data


def _ofrep_result(entry, key, evaluation):
    metadata = {"environment": entry.environment_name}
    flag_type = entry.flag_types.get(key)
    if flag_type:
        metadata["flagType"] = flag_type
    if entry.stale:
        metadata["stale"] = True
    if evaluation.reason == DISABLED:
        # OFREP's disabled flag: no value, so the provider gives the caller's default (open-feature/protocol#46).
        return {"key": key, "reason": DISABLED, "variant": "disabled", "metadata": metadata}
    if evaluation.variant_enabled:
        variant = evaluation.variant
        if evaluation.payload is not None:
            try:
                value = decode_payload(evaluation.payload)
            except ValueError:
                value = evaluation.payload.get("value")
        else:
            value = variant
    else:
        value = evaluation.enabled
        variant = "on" if evaluation.enabled else "off"
    if evaluation.strategy_name:
        metadata["strategy"] = evaluation.strategy_name
    return {"key": key, "value": value, "reason": evaluation.reason, "variant": variant, "metadata": metadata}


def _ofrep_prepare(request, key=None):
    error = _ofrep_errors(key)
    _method(request, ("POST",))
    info = _authenticate(request, OFREP_KINDS, error)
    _rate_limit(info, error)
    body = _json_body(request, _settings()["body_limit"], error)
    if body is not None and not isinstance(body, dict):
        raise error(400, "the request body must be a JSON object with a context", "INVALID_CONTEXT")
    try:
        # No remoteAddress default: OFREP is called by the application on its user's behalf, from its own address.
        ctx = unleash_context((body or {}).get("context"), environment=info.environment_name, remote_address="")
    except ValueError as exc:
        raise error(400, str(exc), "INVALID_CONTEXT") from None
    return snapshots.get(info.environment_id), ctx


def ofrep_flag(request, key):
    """POST /ofrep/v1/evaluate/flags/{key}"""
    entry, ctx = _ofrep_prepare(request, key)
    evaluation = entry.snapshot.resolve(key, ctx)
    if evaluation.flag_not_found:
        raise Refused(404, {"key": key, "errorCode": "FLAG_NOT_FOUND",
                            "errorDetails": f"flag {key!r} was not found in {entry.environment_name}"})
    return 200, _ofrep_answer(entry, key, evaluation), ()


def ofrep_bulk(request):
    """POST /ofrep/v1/evaluate/flags: every flag of the key's environment, with ETag / If-None-Match."""
    entry, ctx = _ofrep_prepare(request)
    etag = _context_etag(entry, ctx)
    if _etag_matches(request, etag):
        return 304, None, [("ETag", etag)]
    resolve = entry.snapshot.resolve
    flags = b",".join([_ofrep_answer(entry, name, resolve(name, ctx)) for name in entry.names])
    metadata = {"environment": entry.environment_name}
    if entry.stale:
        metadata["stale"] = True
    return 200, b'{"flags":[' + flags + b'],"metadata":' + _encode(metadata).encode() + b"}", [("ETag", etag)]


# --- Unleash client API -------------------------------------------------------------------------------------
def _unleash_error(status, details, code=None, headers=()):
    return Refused(status, {"error": details, "message": details}, headers)


def _spec_version(request):
    raw = request.header("HTTP_UNLEASH_CLIENT_SPEC")[:100]
    parts = []
    for piece in raw.strip().lstrip("vV").split(".")[:3]:
        digits = ""
        for char in piece:
            if not char.isascii() or not char.isdigit():
                break
            digits += char
        parts.append(min(int(digits[:10] or 0), 10 ** 9))  # a version part is never that large: cap it
    return tuple(parts + [0] * (3 - len(parts))) if raw else (0, 0, 0)


def client_features(request):
    """GET /api/client/features: the environment's flags in Unleash's format, ETag → 304."""
    _method(request, ("GET", "HEAD"))
    info = _authenticate(request, CLIENT_KINDS, _unleash_error)
    entry = snapshots.get(info.environment_id)
    with_segments = _spec_version(request) >= (4, 2, 0)
    prefix = request.query.get("namePrefix")
    if prefix:
        doc = entry.document if with_segments else snapshots.documents.inline_segments(entry.document)
        doc = dict(doc, features=[f for f in doc["features"] if f["name"].startswith(prefix)])
        body = _encode(doc).encode()
        etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
    else:
        body = entry.body(with_segments)
        etag = entry.etag("s" if with_segments else "i")
    headers = [("ETag", etag), ("Cache-Control", "no-cache")]
    if _etag_matches(request, etag):
        return 304, None, headers
    return 200, body, headers


def _post_json(request, kinds):
    _method(request, ("POST",))
    info = _authenticate(request, kinds, _unleash_error)
    return info, _json_body(request, _settings()["metrics_limit"], _unleash_error)


def _register(request, kinds):
    info, body = _post_json(request, kinds)
    services.client_register(environment_id=info.environment_id, data=body)
    return 202, None, ()


def _metrics(request, kinds):
    info, body = _post_json(request, kinds)
    when, toggles = services.metrics_validate(body)
    services.metrics_record(environment_id=info.environment_id, toggles=toggles, when=when,
                            app_name=str(body.get("appName") or "")[:100])
    return 202, None, ()


# --- Unleash frontend API -----------------------------------------------------------------------------------
def _query_context(request):
    raw = {}
    for name, value in request.query.items():
        if name.startswith("properties[") and name.endswith("]"):
            raw.setdefault("properties", {})[name[11:-1]] = value
        elif name == "properties":
            continue  # a plain ?properties=… is not an object of properties: ignored
        else:
            raw[name] = value
    return raw


def frontend(request):
    """GET|POST /api/frontend: the enabled toggles for a context, with their variants (a disabled flag is not
    listed: the frontend SDKs give the caller's default for it, as Unleash does)."""
    _method(request, ("GET", "POST"))
    info = _authenticate(request, FRONTEND_KINDS, _unleash_error)
    if request.method == "POST":
        body = _json_body(request, _settings()["body_limit"], _unleash_error)
        if body is not None and not isinstance(body, dict):
            raise _unleash_error(400, "the body must be a JSON object with a context")
        raw = (body or {}).get("context", body or {})
    else:
        raw = _query_context(request)
    try:
        ctx = unleash_context(raw, environment=info.environment_name,
                              remote_address=request.header("REMOTE_ADDR"), targeting_key=False)
    except ValueError as exc:
        raise _unleash_error(400, str(exc)) from None
    entry = snapshots.get(info.environment_id)
    etag = _context_etag(entry, ctx)
    if _etag_matches(request, etag):
        return 304, None, [("ETag", etag)]
    resolve = entry.snapshot.resolve
    toggles = []
    for name in entry.names:
        evaluation = resolve(name, ctx)
        if evaluation.enabled:
            toggles.append({"name": name, "enabled": True, "variant": evaluation.variant_dict(),
                            "impressionData": evaluation.impression_data})
    return 200, {"toggles": toggles}, [("ETag", etag)]


# --- routing ------------------------------------------------------------------------------------------------
def _method(request, allowed):
    if request.method not in allowed:
        raise Refused(405, {"errorDetails": f"method {request.method} not allowed"}, [("Allow", ", ".join(allowed))])


ROUTES = {
    "/ofrep/v1/evaluate/flags": ofrep_bulk,
    "/api/client/features": client_features,
    "/api/client/register": lambda r: _register(r, CLIENT_KINDS),
    "/api/client/metrics": lambda r: _metrics(r, CLIENT_KINDS),
    "/api/frontend": frontend,
    "/api/frontend/": frontend,
    "/api/frontend/client/register": lambda r: _register(r, FRONTEND_KINDS),
    "/api/frontend/client/metrics": lambda r: _metrics(r, FRONTEND_KINDS),
}
_WRITES = frozenset({"/api/client/register", "/api/client/metrics", "/api/frontend/client/register",
                     "/api/frontend/client/metrics"})


def serves(path):
    """Whether ``path`` (PATH_INFO) is one of the edge's."""
    return path in ROUTES or (path.startswith(OFREP_FLAG_PREFIX) and "/" not in path[len(OFREP_FLAG_PREFIX):]
                              and len(path) > len(OFREP_FLAG_PREFIX))


def _secure(environ, config):
    header = config["proxy_ssl"]
    if header:
        name, value = header
        if environ.get(name) is not None:
            return environ.get(name) == value
    return environ.get("wsgi.url_scheme") == "https"


def _host(environ, config):
    """The request's host when ALLOWED_HOSTS allows it, else None (what Django's get_host() checks)."""
    if config["forwarded_host"] and "HTTP_X_FORWARDED_HOST" in environ:
        host = environ["HTTP_X_FORWARDED_HOST"]
    elif "HTTP_HOST" in environ:
        host = environ["HTTP_HOST"]
    else:
        host = environ.get("SERVER_NAME", "")
        port = str(environ.get("SERVER_PORT", ""))
        if port and port != ("443" if _secure(environ, config) else "80"):
            host = f"{host}:{port}"
    known = config["hosts"]
    allowed = known.get(host)
    if allowed is None:
        domain, _port = split_domain_port(host)
        allowed = bool(domain) and validate_host(domain, config["allowed_hosts"])
        if len(known) < 1000:
            known[host] = allowed
    return host if allowed else None


def _cors(request, headers, config):
    origin = request.header("HTTP_ORIGIN")
    origins = config["origins"]
    if origin and ("*" in origins or origin in origins):
        headers += [
            ("Access-Control-Allow-Origin", "*" if "*" in origins else origin),
            ("Access-Control-Allow-Headers", "Authorization, Content-Type, If-None-Match, X-API-Key, "
                                             "Unleash-AppName, Unleash-InstanceId, Unleash-Client-Spec"),
            ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
            ("Access-Control-Expose-Headers", "ETag, Retry-After"),
            ("Access-Control-Max-Age", "600"),
        ]


def handle(environ, body=None, path=None):
    """Answer one request for an edge path: ``(status, headers, body bytes)``.

    From Django: ``body`` gives the whole request body (Django reads it), ``path`` the decoded path."""
    config = _config or _settings()
    request = Request(environ, body, path)
    secure = _secure(environ, config)
    host = _host(environ, config)
    status, payload, extra = _answer(request, config, secure, host)
    if payload is None:
        data = b""
    elif isinstance(payload, bytes):
        data = payload
    else:
        data = _encode(payload).encode()
    headers = [("Content-Type", _JSON), ("Content-Length", str(len(data)))] if status not in (204, 304) else []
    headers += extra
    headers += config["static"]
    if secure and config["hsts"]:
        headers.append(("Strict-Transport-Security", config["hsts"]))
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    headers.append(("X-Request-ID", incoming if incoming and _REQUEST_ID.match(incoming) else os.urandom(16).hex()))
    _cors(request, headers, config)
    if request.method == "HEAD":
        data = b""
    return status, headers, data


def _answer(request, config, secure, host):
    if host is None:
        body = {"errorDetails": "the Host header is not one this server answers for (ALLOWED_HOSTS)"}
        if request.path == OFREP_FLAG_PREFIX.rstrip("/") or serves(request.path) and request.path.startswith(
                OFREP_FLAG_PREFIX):  # OFREP's failure bodies: an error code, and the key for one flag
            body = {"errorCode": "GENERAL", **body}
            if request.path.startswith(OFREP_FLAG_PREFIX):
                body = {"key": request.path[len(OFREP_FLAG_PREFIX):], **body}
        return 400, body, []
    if config["redirect"] and not secure:
        target = f"https://{config['redirect_host'] or host}{request.path}"
        if request.environ.get("QUERY_STRING"):
            target += "?" + request.environ["QUERY_STRING"]
        return 301, None, [("Location", target)]
    if request.method == "OPTIONS":
        return 204, None, []
    path = request.path
    try:
        view = ROUTES.get(path)
        if view is not None:
            return view(request)
        if serves(path):
            return ofrep_flag(request, path[len(OFREP_FLAG_PREFIX):])
        return 404, {"errorDetails": f"no flag API at {path[:100]}"}, []
    except Refused as refused:
        return refused.status, refused.body, refused.headers
    except errors.DomainError as exc:
        return exc.status_code, {"errorDetails": exc.message, "message": exc.message, **exc.as_dict()}, []
    except snapshots.Unavailable as exc:
        logger.error("flags: %s", exc)
        return 503, {"errorDetails": "the flag configuration is unavailable (database down, no saved snapshot)"}, \
            [("Retry-After", "5")]
    except DatabaseError as exc:
        logger.error("flags: %s %s needs the database, which cannot be reached: %s", request.method, path, exc)
        return 503, {"errorDetails": "the database cannot be reached; retry later"}, [("Retry-After", "5")]
    except Exception:
        logger.exception("flag API error")
        return 500, {"errorDetails": "internal error"}, []


def _wsgi(environ, start_response):
    if environ.get("PATH_INFO") in _WRITES:  # what Django's request_started / request_finished would do
        snapshots.fresh_connection()
        try:
            status, headers, data = handle(environ)
        finally:
            snapshots.fresh_connection()
    else:
        status, headers, data = handle(environ)
    start_response(_STATUS_LINES.get(status) or f"{status} Error", headers)
    return [data]


def mount(fallback):
    """The portal's WSGI application: the edge's paths answered here, every other path by ``fallback``."""
    routes = ROUTES
    prefix = OFREP_FLAG_PREFIX

    def dispatch(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in routes or path.startswith(prefix):
            return _wsgi(environ, start_response)
        return fallback(environ, start_response)

    return dispatch


def _standalone(environ, start_response):
    """The edge as its own process: the flag APIs, ``/healthz`` (alive) and ``/readyz`` (has keys to answer with:
    200, ``"stale": true`` while the database is unreachable; 503 when it has none)."""
    path = environ.get("PATH_INFO", "")
    if path == "/healthz":
        return _plain(start_response, 200, {"status": "ok"})
    if path == "/readyz":
        try:
            snapshots._key_table()
        except snapshots.Unavailable as exc:
            return _plain(start_response, 503, {"status": "unavailable", "reason": str(exc)})
        stale = snapshots.keys_stale()
        return _plain(start_response, 200, {"status": "degraded" if stale else "ok", "stale": stale})
    return _wsgi(environ, start_response)


def _plain(start_response, status, payload):
    data = _encode(payload).encode()
    start_response(_STATUS_LINES[status], [("Content-Type", _JSON), ("Content-Length", str(len(data)))])
    return [data]


application = _standalone
if STANDALONE:
    # Each worker loads the key table and its environments' snapshots as it starts, beside its first requests.
    threading.Thread(target=snapshots.warm, name="flags-warm", daemon=True).start()
