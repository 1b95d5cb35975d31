"""Login hygiene: every sign-in, sign-out, failure and lockout in the audit trail (Django's auth signals and
django-axes' lockout signal, connected in PmreleaseConfig.ready); the second factor of an IdP sign-in that shows
one (acr/amr) counts as a step-up."""
import time

from django.contrib.auth import BACKEND_SESSION_KEY

from .. import audit
from . import stepup


def _client(request):
    if request is None:
        return {}
    meta = getattr(request, "META", {})
    return {"address": meta.get("REMOTE_ADDR", ""), "user_agent": meta.get("HTTP_USER_AGENT", "")[:200]}


def _source(request):
    backend = getattr(request, "session", {}).get(BACKEND_SESSION_KEY, "") if request is not None else ""
    if backend.endswith("oidc.Backend"):
        return "oidc"
    if backend.endswith("ldap.Backend"):
        return "ldap"
    return "local"


def on_login(sender, request, user, **kwargs):
    source = _source(request)
    claims = getattr(request, "_pm_oidc_claims", None) or {}
    if claims:
        from .oidc import shows_second_factor

        if shows_second_factor(claims):
            amr = claims.get("amr") or []
            shown = claims.get("acr") or ",".join([amr] if isinstance(amr, str) else map(str, amr))
            stepup.mark_session(request, method=f"idp:{shown}", at=float(claims.get("auth_time") or time.time()))
    second_factor = request.session.get(stepup.SESSION_METHOD_KEY) if request is not None else None
    audit.record(action="auth.login", obj=user, by=user, object_repr=user.get_username(),
                 after={"source": source, "second_factor": second_factor, **_client(request)})


def on_logout(sender, request, user, **kwargs):
    if user is None:
        return
    audit.record(action="auth.logout", obj=user, by=user, object_repr=user.get_username(), after=_client(request))


def record_failure(request, *, username, source, reason):
    audit.record(action="auth.failure", object_type="auth.user", object_id="", object_repr=str(username)[:150],
                 after={"source": source, "username": str(username)[:150], **_client(request)}, reason=reason)


def on_failure(sender, credentials, request=None, **kwargs):
    record_failure(request, username=credentials.get("username", ""), source="local",
                   reason="wrong user name or password")


def on_lockout(sender, request, username, ip_address, **kwargs):
    audit.record(action="auth.lockout", object_type="auth.user", object_id="", object_repr=str(username or "")[:150],
                 after={"username": username, "address": ip_address},
                 reason="too many failed sign-ins: locked out for the cool-off time")
