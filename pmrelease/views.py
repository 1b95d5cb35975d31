"""Operational endpoints: liveness, readiness and Prometheus metrics."""
import hmac
import ipaddress

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics as portal_metrics
from .registry import Registry

# What else /readyz asks (DESIGN.md, "Health"): each app registers, in its AppConfig.ready, a callable returning
# the reasons it is degraded (empty: fine). A degraded portal still answers 200: only the database or the broker
# being down takes it out of service (503).
degraded_checks = Registry("readiness check")


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker():
    from .celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


@require_GET
def readyz(request):
    checks = {}
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready", reported by name
            checks[name] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    ready = all(v == "ok" for v in checks.values())
    reasons = []
    for name in degraded_checks.names():
        try:
            found = list(degraded_checks.get(name)())
        except Exception as exc:  # a check that cannot tell is itself a reason, never a 503
            found = [f"{name}: the check failed: {exc.__class__.__name__}: {exc}"[:300]]
        if found:
            checks[name] = "degraded"
            reasons += found
    body = {"status": "not ready" if not ready else "degraded" if reasons else "ready", "checks": checks}
    if reasons:
        body["reasons"] = reasons
    return JsonResponse(body, status=200 if ready else 503)


def metrics_allowed(request):
    """Whether a scrape may read /metrics: the ``METRICS_TOKEN`` as a bearer token, or a client address in
    ``METRICS_ALLOWED_NETWORKS`` (the embedded mode's default: loopback only; production: none until set)."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)


@require_GET
def metrics(request):
    """Every registered collector (each app's and the ground floor's), in Prometheus' text format; only for
    the token or the allowed networks (``metrics_allowed``)."""
    if not metrics_allowed(request):
        response = HttpResponse("/metrics needs the METRICS_TOKEN as a bearer token or a client address in "
                                "METRICS_ALLOWED_NETWORKS\n", status=403, content_type="text/plain; charset=utf-8")
        if settings.METRICS_TOKEN:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(portal_metrics.exposition_registry()), content_type=CONTENT_TYPE_LATEST)


def permission_denied(request, exception=None):
    """``handler403``: inside the admin, the admin's own page (its header, the user's menu, a way back) with
    the reason; elsewhere Django's default."""
    if not request.path.startswith("/admin/") or not getattr(request.user, "is_staff", False):
        return defaults.permission_denied(request, exception)
    from django.contrib import admin
    from django.template.response import TemplateResponse

    referer = request.META.get("HTTP_REFERER", "")
    safe = referer and referer != request.build_absolute_uri() and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    reason = str(exception) if exception is not None and str(exception) else ""
    context = {**admin.site.each_context(request), "title": "Not allowed", "reason": reason,
               "back": referer if safe else "/admin/"}
    response = TemplateResponse(request, "admin/403.html", context, status=403)
    return response.render()
