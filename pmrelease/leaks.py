"""Secret-leak prevention: the one check every free text the portal accepts goes through.

``secret_kinds(text)``: detect-secrets with its keyword and token-format plugins (private keys, AWS, GitHub,
GitLab, Slack and other tokens, JWTs, secrets assigned to key-like names, basic-auth URLs); its entropy plugins
are off, since they flag git SHAs, image digests and UUIDs.

``check(fields, by=...)``: raises ``ValidationFailed`` (400) naming each field and the kind found, unless an
authorised override is in force: a reason given with the request ("this is not a secret": the
``X-Secret-Scan-Override`` header, or the ``_secret_scan_override`` field of an admin form, carried by
``SecretScanOverrideMiddleware``; ``override(reason)`` elsewhere) by a member of the security role or an
administrator. An override used is audited (``secret_scan.override``: the fields and kinds, never the text).

``model_create`` and ``model_update`` (``pmrelease.services``) call it on every text and JSON field they set;
services writing text another way call it themselves.
"""
import contextlib
import contextvars
import functools

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.core.scan import scan_line
from detect_secrets.settings import transient_settings

from . import errors

_OFF = ("Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector")
MAX_LINES = 500
MAX_LINE = 4000
HEADER = "X-Secret-Scan-Override"
FORM_FIELD = "_secret_scan_override"
_override = contextvars.ContextVar("secret_scan_override", default="")


@functools.cache
def _plugins():
    return [{"name": cls.__name__} for cls in get_mapping_from_secret_type_to_class().values()
            if cls.__name__ not in _OFF]


def secret_kinds(text):
    """The kinds of secret ``text`` seems to hold (empty: none)."""
    if not isinstance(text, str) or not text.strip():
        return []
    kinds = []
    with transient_settings({"plugins_used": _plugins()}):
        for line in text.splitlines()[:MAX_LINES]:
            for secret in scan_line(line[:MAX_LINE]):
                if secret.type not in kinds:
                    kinds.append(secret.type)
    return kinds


def texts(value, path):
    """(path, text) of every string in a JSON-able ``value`` (keys too, as ``path.<key>``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from texts(key, f"{path}.{key}")
            yield from texts(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from texts(item, f"{path}[{i}]")


def findings(fields):
    """{field path: [kinds]} of what looks like a secret in ``fields`` ({name: text or JSON-able value})."""
    found = {}
    for name, value in fields.items():
        for path, text in texts(value, name):
            kinds = secret_kinds(text)
            if kinds:
                found.setdefault(path, [])
                found[path] += [k for k in kinds if k not in found[path]]
    return found


def may_override(by):
    from .roles import Role

    return bool(by and getattr(by, "is_authenticated", False)
                and (by.is_superuser or by.groups.filter(name=Role.SECURITY).exists()))


@contextlib.contextmanager
def override(reason):
    """Within: a hit is let through (for an authorised ``by``) with ``reason`` recorded."""
    token = _override.set((reason or "").strip())
    try:
        yield
    finally:
        _override.reset(token)


def check(fields, *, by, obj=None):
    """Refuse (400) text that looks like a secret, naming the field and the kind; see the module doc."""
    found = findings(fields)
    if not found:
        return
    reason = _override.get()
    if reason and may_override(by):
        from . import audit

        audit.record(action="secret_scan.override", obj=obj, object_type="" if obj else "text",
                     object_id="" if obj else "-", by=by, reason=reason,
                     after={"fields": {path: kinds for path, kinds in found.items()}})
        return
    hint = (" (the override needs the security role or an administrator)" if reason else
            f" — if it is not a secret, someone with the security role may resend it with a reason in the "
            f"{HEADER} header")
    field_errors = {path: [f"looks like a secret ({', '.join(kinds)}): remove it, or store it as a secret "
                           "reference"] for path, kinds in found.items()}
    summary = "; ".join(f"{path}: {', '.join(kinds)}" for path, kinds in found.items())
    raise errors.ValidationFailed(f"refused: text that looks like a secret — {summary}{hint}",
                                  field_errors=field_errors)


class SecretScanOverrideMiddleware:
    """Carries a request's override reason (header, or an admin form's field) to ``check``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        reason = request.headers.get(HEADER, "")
        if not reason and request.method == "POST" and request.content_type in (
                "application/x-www-form-urlencoded", "multipart/form-data"):
            reason = request.POST.get(FORM_FIELD, "")
        if not reason:
            return self.get_response(request)
        with override(reason[:500]):
            return self.get_response(request)
