"""Secret references: configuration points at secrets (``vault://<mount>/<path>#<key>``, ``env://<NAME>``) and
never holds them. Each reference carries the seed's rotation policy; beat refreshes Vault's KV v2 metadata
(``created_time`` and ``version`` of the current version, custom metadata — never the value), works out which
references are due, in grace or overdue (``releases.rotation``) and tells their owners once per state.

Resolving a value (``resolve``) happens only in workers at deploy time, for the backends that need one, or for a
member of the security role or an administrator; every resolution is audited (which reference, by whom, for
what) and the value is never logged or recorded (the step logs are redacted by ``redact``).

Vault: ``VAULT_ADDR`` and ``VAULT_TOKEN`` (settings, from the environment), through ``hvac``.
"""
import os
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pmrelease import audit, delivery, errors
from pmrelease.roles import Capability, Role

from . import access, rotation
from . import configschema as schema
from .models import SecretReference

REFERENCE_FIELDS = ["name", "reference", "environment", "owner", "description", "rotation_automatic",
                    "rotation_frequency_days", "grace_period_days", "last_rotated_at"]


class SecretUnavailable(errors.DomainError):
    status_code = 502
    code = "secret_unavailable"


def parse(reference):
    """``vault://secret/pm/db#password`` → ("vault", "secret", "pm/db", "password"); ``env://DB_PASSWORD`` →
    ("env", "", "DB_PASSWORD", ""). Raises ValidationFailed for anything else."""
    if not isinstance(reference, str) or not schema.SECRET_REFERENCE.match(reference):
        raise errors.ValidationFailed("a secret reference is vault://<mount>/<path>#<key> or env://<NAME>",
                                      field_errors={"reference": ["vault://<mount>/<path>#<key> or env://<NAME>"]})
    if reference.startswith("env://"):
        return "env", "", reference[len("env://"):], ""
    location, _, key = reference[len("vault://"):].partition("#")
    mount, _, path = location.strip("/").partition("/")
    if not path:
        raise errors.ValidationFailed("a Vault reference names the mount and the path: vault://secret/app/db#key",
                                      field_errors={"reference": ["vault://<mount>/<path>#<key>"]})
    return "vault", mount, path, key


def _require_manager(by, environment):
    if environment is not None:
        access.require(by, [environment], Capability.CONFIGURE)
    elif not getattr(by, "is_superuser", False):
        raise errors.PermissionDenied("only an administrator may manage secret references of no environment")


def reference_save(*, data, by, instance=None):
    """Create or edit a secret reference (its policy, owner, reference — never a value)."""
    from pmrelease.services import model_create, model_update

    if "reference" in data:
        parse(data["reference"])
    for name in ("rotation_frequency_days",):
        if name in data and (not isinstance(data[name], int) or data[name] < 1):
            raise errors.ValidationFailed(f"{name}: at least 1 day", field_errors={name: ["at least 1 day"]})
    environment = data.get("environment", instance.environment if instance else None)
    _require_manager(by, environment)
    with transaction.atomic():
        if instance is None or instance.pk is None:
            return model_create(model=SecretReference, data=data, fields=REFERENCE_FIELDS, by=by,
                                action="secret_reference.create")
        row = SecretReference.objects.select_for_update().get(pk=instance.pk)
        if row.environment_id:
            access.require(by, [row.environment], Capability.CONFIGURE)
        return model_update(instance=row, data=data, fields=REFERENCE_FIELDS, by=by,
                            action="secret_reference.update")[0]


def reference_delete(*, instance, by):
    from pmrelease.services import model_delete

    _require_manager(by, instance.environment)
    with transaction.atomic():
        model_delete(instance=instance, by=by, fields=REFERENCE_FIELDS, action="secret_reference.delete")


def rotation_of(ref, now=None):
    return rotation.rotation(last_rotated=ref.last_rotated_at, frequency_days=ref.rotation_frequency_days,
                             grace_days=ref.grace_period_days, now=now or timezone.now())


def rotation_report(now=None):
    """{state: [(reference, Rotation)]} for the states that need attention (due, in_grace, overdue,
    unknown)."""
    now = now or timezone.now()
    report = {state: [] for state in rotation.ATTENTION}
    for ref in SecretReference.objects.select_related("owner", "environment"):
        found = rotation_of(ref, now)
        if found.state in report:
            report[found.state].append((ref, found))
    return report


# --- Vault (KV v2) -----------------------------------------------------------------------------------------------
def vault_client():
    import hvac

    addr = getattr(settings, "VAULT_ADDR", "")
    if not addr:
        raise SecretUnavailable("VAULT_ADDR is not set: the portal cannot reach Vault")
    return hvac.Client(url=addr, token=getattr(settings, "VAULT_TOKEN", "") or None,
                       timeout=getattr(settings, "VAULT_TIMEOUT", 5))


def _vault_error(exc, ref):
    return SecretUnavailable(f"Vault refused or failed for {ref}: {type(exc).__name__}: {str(exc)[:200]}")


def vault_metadata(reference, client=None):
    """KV v2 metadata of the secret ``reference`` points at: {version, created_time (datetime),
    custom_metadata} of its current version. Never reads the value."""
    import hvac.exceptions
    import requests

    _, mount, path, _ = parse(reference)
    client = client or vault_client()
    try:
        data = client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)["data"]
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise _vault_error(exc, reference) from exc
    version = int(data["current_version"])
    created = data["versions"][str(version)]["created_time"]
    return {"version": version, "created_time": _parse_time(created),
            "custom_metadata": dict(data.get("custom_metadata") or {})}


def _parse_time(text):
    # Vault writes RFC 3339 with nanoseconds: 2026-12-02T01:23:45.123456789Z
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00" if frac else f"{head}+00:00")


def refresh(ref, client=None):
    """Read ``ref``'s rotation metadata from Vault onto it (env references have none: unchanged)."""
    if ref.backend != "vault":
        return ref
    try:
        meta = vault_metadata(ref.reference, client)
        changes = {"last_rotated_at": meta["created_time"], "backend_version": meta["version"],
                   "backend_metadata": meta["custom_metadata"], "check_error": ""}
    except SecretUnavailable as exc:
        changes = {"check_error": exc.message[:300]}
    changes["checked_at"] = timezone.now()
    with transaction.atomic():
        row = SecretReference.objects.select_for_update().get(pk=ref.pk)
        rotated = "backend_version" in changes and changes["backend_version"] != row.backend_version
        for name, value in changes.items():
            setattr(row, name, value)
        row.save(update_fields=list(changes))
        if rotated:
            audit.record(action="secret_reference.rotated", obj=row,
                         after={"version": row.backend_version, "created_time": row.last_rotated_at})
    return row


def check_rotation(*, now=None, client=None):
    """Beat: refresh Vault metadata, then notify each owner once per new attention state. Returns
    {state: count}."""
    now = now or timezone.now()
    for ref in SecretReference.objects.all():
        if ref.backend == "vault" and getattr(settings, "VAULT_ADDR", ""):
            refresh(ref, client)
    counts = {}
    for ref in SecretReference.objects.select_related("owner", "environment"):
        found = rotation_of(ref, now)
        counts[found.state] = counts.get(found.state, 0) + 1
        state = found.state if found.state in rotation.ATTENTION else ""
        if state == ref.notified_state:
            continue
        with transaction.atomic():
            row = SecretReference.objects.select_for_update().get(pk=ref.pk)
            if row.notified_state == state:
                continue
            row.notified_state = state
            row.save(update_fields=["notified_state"])
            if state:
                _notify(row, found)
    return counts


_WORDS = {rotation.DUE: "is due for rotation", rotation.IN_GRACE: "is past due (in its grace period)",
          rotation.OVERDUE: "is overdue for rotation", rotation.UNKNOWN: "has no known last rotation"}


def _notify(ref, found):
    when = f" (due {found.due_at:%Y-%m-%d}, grace until {found.grace_ends_at:%Y-%m-%d})" if found.due_at else ""
    delivery.notify(
        event="secret.rotation", environment=ref.environment.name if ref.environment else "",
        key=f"secret-{ref.pk}-{found.state}-{found.due_at:%Y%m%d}" if found.due_at else f"secret-{ref.pk}-unknown",
        severity="failure" if found.state in (rotation.OVERDUE, rotation.UNKNOWN) else "warning",
        recipients=[ref.owner.email] if ref.owner and ref.owner.email else [],
        title=f"[{settings.PRODUCT_NAME}] Secret {ref.name} {_WORDS[found.state]}",
        body=f"The secret reference {ref.name} ({ref.reference}) {_WORDS[found.state]}{when}. "
             f"Policy: every {ref.rotation_frequency_days} d, grace {ref.grace_period_days} d.",
        data={"secret": ref.name, **found.as_dict()})


# --- resolving (workers at deploy time; security or administrators) --------------------------------------------------
def may_resolve(by):
    if by is None:
        return True  # the worker itself, at deploy time
    return bool(getattr(by, "is_authenticated", False) and (
        by.is_superuser or by.groups.filter(name__in=[Role.SECURITY, Role.OPERATIONS]).exists()))


def resolve(reference, *, by=None, purpose, client=None):
    """The secret's value. Role-based (``may_resolve``) and audited; never log the result."""
    if not may_resolve(by):
        audit.record(action="secret.resolve_refused", object_type="secret", object_id=reference[:100],
                     object_repr=reference[:200], by=by, reason=purpose)
        raise errors.PermissionDenied("resolving a secret needs the security or operations role")
    kind, mount, path, key = parse(reference)
    if kind == "env":
        if path not in os.environ:
            raise SecretUnavailable(f"{reference}: the worker has no environment variable {path}")
        value = os.environ[path]
    else:
        import hvac.exceptions
        import requests

        client = client or vault_client()
        try:
            data = client.secrets.kv.v2.read_secret_version(path=path, mount_point=mount,
                                                            raise_on_deleted_version=True)["data"]["data"]
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise _vault_error(exc, reference) from exc
        if key not in data:
            raise SecretUnavailable(f"{reference}: the secret has no key {key!r} (keys: {', '.join(sorted(data))})")
        value = str(data[key])
    audit.record(action="secret.resolve", object_type="secret", object_id=reference[:100],
                 object_repr=reference[:200], by=by, reason=purpose)
    return value


def resolve_document(document, *, by=None, purpose, client=None):
    """{path: value} of every reference in a configuration document (for a backend at deploy time)."""
    return {path: resolve(ref, by=by, purpose=purpose, client=client)
            for path, ref in schema.references(document).items()}


def redact(text, values):
    """``text`` with each of ``values`` (resolved secrets) replaced by ``••••`` (for step logs)."""
    for value in sorted((v for v in values if v and len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, "••••")
    return text

