"""Request id: taken from X-Request-ID (or made), kept in a context variable for the audit trail; the HTTP
metrics (requests by view and status, latency)."""
import contextvars
import re
import time
import uuid

from django.http import JsonResponse

_request_id = contextvars.ContextVar("request_id", default="")
_request = contextvars.ContextVar("request", default=None)
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def current_request_id():
    return _request_id.get()


def set_request_id(value):
    """Set the id for work outside a request (Celery tasks, commands); returns the reset token."""
    return _request_id.set(value)


def reset_request_id(token):
    _request_id.reset(token)


def current_request():
    """The request being served in this context (the logs read its user), or None."""
    return _request.get()


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        token, request_token = _request_id.set(rid), _request.set(request)
        request.request_id = rid
        try:
            response = self.get_response(request)
        finally:
            _request.reset(request_token)
            _request_id.reset(token)
        response["X-Request-ID"] = rid
        return response


class MetricsMiddleware:
    """``http_requests_total`` and ``http_request_duration_seconds`` by view (the URL pattern's name: bounded,
    unlike paths; "unmatched" for a path no pattern matched), method and status."""

    METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from . import metrics

        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.route or "unnamed") if match is not None else "unmatched"
        method = request.method if request.method in self.METHODS else "other"
        try:
            metrics.http_requests.labels(view, method, str(response.status_code)).inc()
            metrics.http_duration.labels(view, method).observe(time.perf_counter() - started)
        except Exception:  # noqa: BLE001 - a metric never fails a request
            pass
        return response


JSON_PREFIXES = ("/api/", "/ofrep/", "/status/api/")


class JsonErrorsMiddleware:
    """Machine clients get JSON errors: a 404 or 405 under ``JSON_PREFIXES`` that is not JSON already (Django's
    HTML page for an unknown route — with ``DEBUG`` on, the list of every URL pattern — or the empty body of
    ``require_http_methods``) becomes ``{"detail": …}`` with the same status (and ``Allow`` header)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code not in (404, 405) or not request.path.startswith(JSON_PREFIXES):
            return response
        if response.get("Content-Type", "").startswith(("application/json", "application/problem+json")):
            return response
        if response.status_code == 404:
            detail = "Not found."
        else:
            detail = f'Method "{request.method}" not allowed.'
        replaced = JsonResponse({"detail": detail}, status=response.status_code)
        for header in ("Allow", "X-Request-ID", "Vary", "Access-Control-Allow-Origin"):
            if header in response:
                replaced[header] = response[header]
        return replaced


class RefuseNulMiddleware:
    """A NUL character in the path or query string of a request under ``JSON_PREFIXES`` is a 400: no database
    can look it up (PostgreSQL refuses it in any string), and no name or filter of this portal holds one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(JSON_PREFIXES) and (
                "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", "")
                or any("\x00" in key or "\x00" in value for key, values in request.GET.lists() for value in values)):
            return JsonResponse({"detail": "the path and query parameters may not contain NUL characters"},
                                status=400)
        return self.get_response(request)
