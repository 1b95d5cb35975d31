"""The evaluation APIs for applications: OFREP, the Unleash client API and the Unleash frontend API.

Plain Django views (no DRF on this path): authenticate the environment's API key (cached), take the
environment's compiled snapshot (cached), evaluate, answer. No database access once warm, except for the
SDKs' registration and metrics posts, which are written aggregated per flag and time bucket.
"""
import datetime as dt
import hashlib
import json
import logging
import math
import threading
import time

from django.conf import settings
from django.http import HttpResponse
from django.http.request import RawPostDataException
from django.views.decorators.csrf import csrf_exempt

from pmrelease import errors

from . import services, snapshots, usage
from .engine import decode_payload
from .models import ApiKeyKind

logger = logging.getLogger(__name__)

CLIENT_KINDS = frozenset({ApiKeyKind.CLIENT, ApiKeyKind.ADMIN})
FRONTEND_KINDS = frozenset({ApiKeyKind.FRONTEND, ApiKeyKind.ADMIN})
OFREP_KINDS = frozenset({ApiKeyKind.CLIENT, ApiKeyKind.FRONTEND, ApiKeyKind.ADMIN})
CONTEXT_FIELDS = frozenset({"userId", "sessionId", "remoteAddress", "appName", "environment", "currentTime"})
_JSON = "application/json"


class _Refused(Exception):
    def __init__(self, response):
        self.response = response


def _dumps(data):
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _json(data, status=200, headers=None):
    response = HttpResponse(_dumps(data), status=status, content_type=_JSON)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _cors(response, request):
    origins = settings.FLAGS_CORS_ORIGINS
    origin = request.META.get("HTTP_ORIGIN")
    if origin and ("*" in origins or origin in origins):
        response["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
        response["Access-Control-Allow-Headers"] = "Authorization, Content-Type, If-None-Match, X-API-Key, " \
                                                   "Unleash-AppName, Unleash-InstanceId, Unleash-Client-Spec"
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Expose-Headers"] = "ETag, Retry-After"
        response["Access-Control-Max-Age"] = "600"
    return response


def _preflight(request):
    return _cors(HttpResponse(status=204), request)


# --- authentication and limits --------------------------------------------------------------------------
def _raw_key(request):
    header = request.META.get("HTTP_AUTHORIZATION", "").strip()
    if header[:7].lower() == "bearer ":
        header = header[7:].strip()
    return header or request.META.get("HTTP_X_API_KEY", "").strip()


def _authenticate(request, kinds, error):
    raw = _raw_key(request)
    if not raw:
        raise _Refused(error(401, "an API key is required (Authorization: Bearer <key> or X-API-Key)"))
    info = snapshots.lookup_key(raw)
    if info is None:
        raise _Refused(error(401, "the API key is invalid or revoked"))
    if info.kind not in kinds:
        raise _Refused(error(403, f"a {info.kind} key cannot use this API"))
    return info


_buckets: dict = {}
_bucket_lock = threading.Lock()


def _rate_limit(info, error):
    """A per-key token bucket in each process: ``rate`` requests per second, bursts up to one second's worth."""
    rate = info.rate_limit or int(settings.FLAGS_RATE_LIMIT)
    if rate <= 0:
        return
    now = time.monotonic()
    with _bucket_lock:
        tokens, last = _buckets.get(info.id, (float(rate), now))
        tokens = min(float(rate), tokens + (now - last) * rate)
        if tokens < 1.0:
            _buckets[info.id] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / rate))
            raise _Refused(error(429, f"rate limit of {rate} requests per second exceeded",
                                 {"Retry-After": str(retry)}))
        _buckets[info.id] = (tokens - 1.0, now)


def _body(request, error, limit=None):
    """The JSON body (None when empty). 413 when too large, 400 PARSE_ERROR when not JSON."""
    limit = limit or int(settings.FLAGS_MAX_BODY_BYTES)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise _Refused(error(413, f"the request body is larger than {limit} bytes"))
    try:
        raw = request.body
    except (RawPostDataException, OSError) as exc:
        raise _Refused(error(400, f"the request body could not be read: {exc}", code="PARSE_ERROR")) from None
    except Exception as exc:  # RequestDataTooBig and friends
        raise _Refused(error(413, f"the request body could not be accepted: {exc}")) from None
    if len(raw) > limit:
        raise _Refused(error(413, f"the request body is larger than {limit} bytes"))
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused(error(400, f"the request body is not valid JSON: {exc}", code="PARSE_ERROR")) from None


def _property_value(name, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"context attribute {name!r} must be a string, number or boolean")


def _is_datetime(value):
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def unleash_context(raw, *, environment, remote_address, targeting_key=True):
    """An engine context from OFREP / frontend attributes: targetingKey is the userId unless userId is given,
    the Unleash fields map to themselves, ``properties`` and every other attribute become properties."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError("context must be a JSON object")
    ctx = {}
    properties = {}
    if targeting_key and raw.get("targetingKey") is not None and not isinstance(raw["targetingKey"], str):
        raise ValueError(f"targetingKey must be a string, not {type(raw['targetingKey']).__name__}")
    if raw.get("currentTime") is not None and not _is_datetime(raw["currentTime"]):
        raise ValueError(f"currentTime {str(raw['currentTime'])[:40]!r} must be an ISO 8601 date-time, e.g. "
                         "2026-12-01T10:00:00Z")
    for name, value in raw.items():
        if value is None or (name == "targetingKey" and targeting_key):
            continue
        if name == "properties" and isinstance(value, dict):
            for prop, prop_value in value.items():
                if prop_value is not None:
                    properties[str(prop)] = _property_value(prop, prop_value)
        elif name in CONTEXT_FIELDS:
            ctx[name] = _property_value(name, value)
        else:
            properties[name] = _property_value(name, value)
    if "userId" not in ctx and targeting_key and raw.get("targetingKey") is not None:
        ctx["userId"] = _property_value("targetingKey", raw["targetingKey"])
    if properties:
        ctx["properties"] = properties
    ctx.setdefault("environment", environment)
    if remote_address:
        ctx.setdefault("remoteAddress", remote_address)
    return ctx


def _context_etag(entry, ctx):
    digest = hashlib.blake2b((entry.token + _dumps(sorted(ctx.items(), key=lambda i: i[0]))
                              + _dumps(sorted(ctx.get("properties", {}).items()))).encode(),
                             digest_size=12).hexdigest()
    return f'"{digest}"'


def _etag_matches(request, etag):
    header = request.META.get("HTTP_IF_NONE_MATCH")
    if not header:
        return False
    candidates = [c.strip() for c in header.split(",")]
    return etag in candidates or f"W/{etag}" in candidates or "*" in candidates


# --- OFREP ----------------------------------------------------------------------------------------------
def _ofrep_error(status, details, headers=None, *, code=None, key=None):
    body = {"errorDetails": details}
    if code:
        body = {"errorCode": code, "errorDetails": details}
        if key is not None:
            body = {"key": key, **body}
    return _json(body, status=status, headers=headers)


def _ofrep_result(entry, key, evaluation):
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
    metadata = {"environment": entry.environment_name}
    flag_type = entry.flag_types.get(key)
    if flag_type:
        metadata["flagType"] = flag_type
    if evaluation.strategy_name:
        metadata["strategy"] = evaluation.strategy_name
    usage.record(entry.environment_id, key, evaluation.enabled, evaluation.variant if evaluation.variant_enabled
                 else None)
    return {"key": key, "value": value, "reason": evaluation.reason, "variant": variant, "metadata": metadata}


def _ofrep_prepare(request, key=None):
    def error(status, details, headers=None, code=None):
        if status == 400:
            return _ofrep_error(status, details, headers, code=code or "INVALID_CONTEXT", key=key)
        return _ofrep_error(status, details, headers)

    info = _authenticate(request, OFREP_KINDS, error)
    _rate_limit(info, error)
    body = _body(request, error)
    if body is not None and not isinstance(body, dict):
        raise _Refused(error(400, "the request body must be a JSON object with a context", code="INVALID_CONTEXT"))
    try:
        ctx = unleash_context((body or {}).get("context"), environment=info.environment_name,
                              remote_address=request.META.get("REMOTE_ADDR", ""))
    except ValueError as exc:
        raise _Refused(error(400, str(exc), code="INVALID_CONTEXT")) from None
    return info, snapshots.get(info.environment_id), ctx


def _guarded(view):
    """Refusals become their response; an unexpected error a JSON 500 (logged), never an HTML page."""
    def wrapper(request, *args, **kwargs):
        if request.method == "OPTIONS":
            return _preflight(request)
        try:
            response = view(request, *args, **kwargs)
        except _Refused as refused:
            response = refused.response
        except errors.DomainError as exc:
            response = _json({"errorDetails": exc.message, "message": exc.message, **exc.as_dict()},
                             status=exc.status_code)
        except Exception:
            logger.exception("flag API error")
            response = _json({"errorDetails": "internal error"}, status=500)
        return _cors(response, request)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return csrf_exempt(wrapper)


def _method(request, allowed):
    if request.method not in allowed:
        response = _json({"errorDetails": f"method {request.method} not allowed"}, status=405)
        response["Allow"] = ", ".join(allowed)
        raise _Refused(response)


@_guarded
def ofrep_flag(request, key):
    """POST /ofrep/v1/evaluate/flags/{key}"""
    _method(request, ("POST",))
    _info, entry, ctx = _ofrep_prepare(request, key)
    evaluation = entry.snapshot.evaluate(key, ctx)
    if evaluation.flag_not_found:
        return _ofrep_error(404, f"flag {key!r} was not found in {entry.environment_name}", code="FLAG_NOT_FOUND",
                            key=key)
    return _json(_ofrep_result(entry, key, evaluation))


@_guarded
def ofrep_bulk(request):
    """POST /ofrep/v1/evaluate/flags: every flag of the key's environment, with ETag / If-None-Match."""
    _method(request, ("POST",))
    _info, entry, ctx = _ofrep_prepare(request)
    etag = _context_etag(entry, ctx)
    if _etag_matches(request, etag):
        response = HttpResponse(status=304)
        response["ETag"] = etag
        return response
    snapshot = entry.snapshot
    flags = [_ofrep_result(entry, name, snapshot.evaluate(name, ctx)) for name in snapshot.feature_names()]
    return _json({"flags": flags, "metadata": {"environment": entry.environment_name}}, headers={"ETag": etag})


# --- Unleash client API ---------------------------------------------------------------------------------
def _unleash_error(status, details, headers=None, code=None):
    return _json({"error": details, "message": details}, status=status, headers=headers)


def _spec_version(request):
    raw = request.META.get("HTTP_UNLEASH_CLIENT_SPEC", "")[:100]
    parts = []
    for piece in raw.strip().lstrip("vV").split(".")[:3]:
        digits = ""
        for char in piece:
            if not char.isascii() or not char.isdigit():
                break
            digits += char
        parts.append(min(int(digits[:10] or 0), 10 ** 9))  # a version part is never that large: cap it
    return tuple(parts + [0] * (3 - len(parts))) if raw else (0, 0, 0)


@_guarded
def client_features(request):
    """GET /api/client/features: the environment's flags in Unleash's format, ETag → 304."""
    _method(request, ("GET", "HEAD"))
    info = _authenticate(request, CLIENT_KINDS, _unleash_error)
    entry = snapshots.get(info.environment_id)
    with_segments = _spec_version(request) >= (4, 2, 0)
    prefix = request.GET.get("namePrefix")
    if prefix:
        doc = entry.document if with_segments else snapshots.inline_segments(entry.document)
        doc = dict(doc, features=[f for f in doc["features"] if f["name"].startswith(prefix)])
        body = _dumps(doc).encode()
        etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
    else:
        body = entry.body_with_segments if with_segments else entry.body_inlined
        etag = entry.etag("s" if with_segments else "i")
    if _etag_matches(request, etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type=_JSON)
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response


def _post_json(request, kinds):
    _method(request, ("POST",))
    info = _authenticate(request, kinds, _unleash_error)
    limit = int(settings.FLAGS_MAX_METRICS_BYTES)
    body = _body(request, lambda status, details, headers=None, code=None: _unleash_error(status, details, headers),
                 limit=limit)
    return info, body


def _register(request, kinds):
    info, body = _post_json(request, kinds)
    services.client_register(environment_id=info.environment_id, data=body)
    return HttpResponse(status=202)


def _metrics(request, kinds):
    info, body = _post_json(request, kinds)
    when, toggles = services.metrics_validate(body)
    services.metrics_record(environment_id=info.environment_id, toggles=toggles, when=when,
                            app_name=str(body.get("appName") or "")[:100])
    return HttpResponse(status=202)


@_guarded
def client_register(request):
    """POST /api/client/register (202)"""
    return _register(request, CLIENT_KINDS)


@_guarded
def client_metrics(request):
    """POST /api/client/metrics (202): counts aggregated per flag and time bucket."""
    return _metrics(request, CLIENT_KINDS)


# --- Unleash frontend API -------------------------------------------------------------------------------
def _query_context(request):
    raw = {}
    for name, value in request.GET.items():
        if name.startswith("properties[") and name.endswith("]"):
            raw.setdefault("properties", {})[name[11:-1]] = value
        elif name == "properties":
            continue  # a plain ?properties=… is not an object of properties: ignored
        else:
            raw[name] = value
    return raw


@_guarded
def frontend(request):
    """GET|POST /api/frontend: the enabled toggles for a context, with their variants."""
    _method(request, ("GET", "POST"))
    info = _authenticate(request, FRONTEND_KINDS, _unleash_error)
    if request.method == "POST":
        body = _body(request, lambda status, details, headers=None, code=None: _unleash_error(status, details))
        if body is not None and not isinstance(body, dict):
            raise _Refused(_unleash_error(400, "the body must be a JSON object with a context"))
        raw = (body or {}).get("context", body or {})
    else:
        raw = _query_context(request)
    try:
        ctx = unleash_context(raw, environment=info.environment_name,
                              remote_address=request.META.get("REMOTE_ADDR", ""), targeting_key=False)
    except ValueError as exc:
        raise _Refused(_unleash_error(400, str(exc))) from None
    entry = snapshots.get(info.environment_id)
    etag = _context_etag(entry, ctx)
    if _etag_matches(request, etag):
        response = HttpResponse(status=304)
        response["ETag"] = etag
        return response
    snapshot = entry.snapshot
    toggles = []
    for name in snapshot.feature_names():
        evaluation = snapshot.evaluate(name, ctx)
        if evaluation.enabled:
            toggles.append({"name": name, "enabled": True, "variant": evaluation.variant_dict(),
                            "impressionData": evaluation.impression_data})
    return _json({"toggles": toggles}, headers={"ETag": etag})


@_guarded
def frontend_register(request):
    """POST /api/frontend/client/register (202)"""
    return _register(request, FRONTEND_KINDS)


@_guarded
def frontend_metrics(request):
    """POST /api/frontend/client/metrics (202)"""
    return _metrics(request, FRONTEND_KINDS)
