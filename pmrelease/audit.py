"""Writing and verifying the audit trail.

Every row carries an HMAC-SHA256, keyed by ``settings.AUDIT_KEY`` (``key()``: never stored in the database),
of every stored field (its id, time, actor id and name, action, object type, id and text, before/after,
reason, request id) and of the previous row's hash. Editing a row, re-hashing the chain without the key,
removing or inserting a row anywhere breaks the chain at that row (``verify``); removing the newest rows, or
all of them, is caught by the signed chain-head checkpoints that beat appends to a file outside the database
(``pmrelease.checkpoints``). Rows are written inside the caller's transaction: an operation that rolls back
leaves no audit row behind, and one that commits always has one.

Before/after snapshots are redacted at write time (``redact``): the values of secret-looking keys (token,
password, secret, authorization, key, …), bearer credentials and passwords in URLs are replaced by a keyed
fingerprint, so the trail shows that a secret changed without holding it.

Rows written before the key existed (``scheme`` 1: SHA-256 of fewer fields, no key) keep verifying with
the function that wrote them; the first keyed row anchors them (its HMAC covers their last hash), and a
scheme-1 row after a keyed one is a break.
"""
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from .middleware import current_request_id
from .models import AuditEvent

GENESIS = "0" * 64
SYSTEM = "system"  # the actor of work nobody started by hand: the deployment engine, Celery beat, signals
_LOCK_KEY = 727274  # pg advisory lock serialising appends to the chain
LEGACY = 1  # SHA-256 of some fields, no key (rows written before the audit key)
KEYED = 2  # HMAC-SHA256 under key() of every stored field


# --- the key -------------------------------------------------------------------------------------------------
_keys = {}


def key():
    """The audit key (bytes). ``settings.AUDIT_KEY`` when set. Unset, in the embedded mode: a random key made
    once in ``VAR_DIR/audit.key`` (mode 0600); with DATABASE_URL set: derived from SECRET_KEY (HMAC-SHA256 of a
    fixed label), so that the chain can only be re-computed by whoever holds the settings, not the database."""
    configured = getattr(settings, "AUDIT_KEY", "")
    if configured:
        return configured.encode()
    cache_key = (settings.SECRET_KEY, str(settings.VAR_DIR), settings.EMBEDDED)
    if cache_key not in _keys:
        if settings.EMBEDDED:
            _keys[cache_key] = _embedded_key(Path(settings.VAR_DIR) / "audit.key")
        else:
            _keys[cache_key] = hmac.new(settings.SECRET_KEY.encode(), b"pmrelease audit key v1",
                                        hashlib.sha256).hexdigest().encode()
    return _keys[cache_key]


def _embedded_key(path):
    """The key in ``path``, made once: written to a temporary file and linked into place, so that processes
    starting together (web, worker, beat) all read the same complete key."""
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    return path.read_text().strip().encode()


def sign(payload):
    """HMAC-SHA256 (hex) of ``payload`` (JSON-able) under the audit key."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hmac.new(key(), text.encode(), hashlib.sha256).hexdigest()


# --- redaction -----------------------------------------------------------------------------------------------
SECRET_WORDS = frozenset({
    "token", "tokens", "password", "passwd", "pwd", "passphrase", "secret", "secrets", "authorization", "auth",
    "key", "apikey", "credential", "credentials", "cookie", "bearer", "privatekey", "signature",
})
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_VALUE = re.compile(r"^\s*(bearer|basic|token)\s+\S{8,}|-----BEGIN [A-Z ]*PRIVATE KEY-----", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^/\s@]+)(?=@)", re.IGNORECASE)


def is_secret_name(name):
    """Whether a key names a secret: one of its words (snake, kebab or camel case) is in SECRET_WORDS
    (``token``, ``api_key``, ``X-Auth-Token``, ``clientSecret``, ``password``, ``Authorization`` …)."""
    text = str(name)
    words = {w.lower() for w in _WORDS.findall(text)}
    return bool(words & SECRET_WORDS) or text.lower().replace("_", "").replace("-", "") in SECRET_WORDS


def fingerprint(value):
    """What stands in the trail for a secret: a keyed fingerprint (the same secret, the same text)."""
    return f"[redacted {sign(['redacted', value])[:12]}]"


def redact(value):
    """A copy of a JSON-able snapshot with every secret replaced by its ``fingerprint`` (empty ones kept, so
    that "removed" stays visible)."""
    if isinstance(value, dict):
        return {k: (fingerprint(v) if is_secret_name(k) and v not in (None, "", [], {}) else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        if _SECRET_VALUE.search(value):
            return fingerprint(value)
        return _URL_PASSWORD.sub(lambda m: m.group("head") + fingerprint(m.group("password")), value)
    return value


# --- snapshots -----------------------------------------------------------------------------------------------
def _normalise(value):
    """What a JSONField gives back after a round trip, so the hash is computed on stored data."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(instance, fields=None, exclude=()):
    """A JSON-able dict of a model instance's editable fields (M2M as sorted id lists, JSON as stored)."""
    data = model_to_dict(instance, fields=fields, exclude=exclude)
    many = {f.name for f in instance._meta.many_to_many}
    for key_, value in list(data.items()):
        if key_ in many:  # related rows as a sorted id list; a JSON list keeps its order
            data[key_] = sorted(getattr(v, "pk", v) for v in value)
        elif hasattr(value, "pk"):
            data[key_] = value.pk
    return _normalise(data)


def diff(before, after):
    """Only the keys whose values changed: (before_subset, after_subset)."""
    before = before or {}
    after = after or {}
    keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def actor_name(by):
    """How the trail names an actor: a person by user name (with the token's name when acting through an API
    token: ``ci-bot (token staging deployer)``); ``None`` (or ``"system"``) as "system"; a named
    system actor (a management command, say) by its name."""
    if getattr(by, "is_authenticated", False):
        token = getattr(by, "_pm_token", None)  # pmrelease.tokens: the account acting through a named token
        if token is not None:
            return f"{by.get_username()} (token {token.name or token.prefix})"[:150]
        return by.get_username()
    if isinstance(by, str) and by.strip():
        return by.strip()[:150]
    return SYSTEM


# --- hashing -------------------------------------------------------------------------------------------------
def _canonical(value):
    """JSON numbers as the database gives them back: PostgreSQL's jsonb turns 1e16 into 10000000000000000 and
    keeps 100.0, so integral floats count as integers and numbers beyond 1e15 by their float text."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return repr(value)
        return int(value) if abs(value) < 10**15 else repr(float(value))
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _legacy_digest(event):
    payload = json.dumps(
        [event.prev_hash, event.created_at.isoformat(), event.actor_username, event.action, event.object_type,
         event.object_id, event.before, event.after, event.reason, event.request_id],
        sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def digest(event):
    """The hash an event must carry: every stored field but the hash itself, under the audit key."""
    if event.scheme == LEGACY:
        return _legacy_digest(event)
    return sign([event.scheme, event.id, event.created_at.isoformat(), event.actor_id, event.actor_username,
                 event.action, event.object_type, event.object_id, event.object_repr, _canonical(event.before),
                 _canonical(event.after), event.reason, event.request_id, event.prev_hash])


def _next_id():
    """The id the next row gets (it is part of the hash), taken under the chain's lock."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [AuditEvent._meta.db_table])
            return cursor.fetchone()[0]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [AuditEvent._meta.db_table])
        row = cursor.fetchone()
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return max(row[0] if row else 0, last) + 1


def record(*, action, obj=None, object_type=None, object_id=None, object_repr=None, by=None, before=None,
           after=None, reason=""):
    """Append one audit event. Call inside the transaction of the change it describes."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id if object_id is not None else str(obj.pk)
        object_repr = object_repr if object_repr is not None else str(obj)[:200]
    actor = by if getattr(by, "is_authenticated", False) else None
    event = AuditEvent(
        scheme=KEYED,
        created_at=timezone.now(),
        actor_id=actor.pk if actor is not None else None,
        actor_username=actor_name(by),
        action=action,
        object_type=object_type or "",
        object_id=str(object_id or ""),
        object_repr=(object_repr or "")[:200],
        before=redact(_normalise(before)),
        after=redact(_normalise(after)),
        reason=reason or "",
        request_id=current_request_id(),
    )
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        event.prev_hash = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS
        event.id = _next_id()
        event.hash = digest(event)
        event.save(force_insert=True)
    return event


# --- verification --------------------------------------------------------------------------------------------
@dataclass
class Break:
    """One place where the trail is not what was written: the row (None: the trail as a whole) and why."""

    event_id: int | None
    problem: str

    def __str__(self):
        return f"event #{self.event_id}: {self.problem}" if self.event_id is not None else self.problem


@dataclass
class Report:
    checked: int = 0
    last_id: int | None = None
    last_hash: str = GENESIS
    breaks: list = field(default_factory=list)
    checkpoint: object = None  # the newest valid checkpoint compared with (pmrelease.checkpoints.Checkpoint)

    @property
    def ok(self):
        return not self.breaks


def walk(report=None):
    """Check every row, oldest first: its link to the previous row and its hash. Every break is reported
    (one altered row is one break: the next row is checked against the hash stored before it)."""
    report = report or Report()
    prev, prev_id, keyed_seen = GENESIS, None, False
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if event.prev_hash != prev:
            where = f"#{prev_id}" if prev_id is not None else "the start of the trail"
            report.breaks.append(Break(event.id, f"does not link to the row before it ({where}): rows were "
                                                 "deleted or inserted between them"))
        if event.scheme not in (LEGACY, KEYED):
            report.breaks.append(Break(event.id, f"unknown hash scheme {event.scheme}"))
        elif event.scheme == LEGACY and keyed_seen:
            report.breaks.append(Break(event.id, "an unkeyed (scheme 1) row after keyed rows: re-hashed without "
                                                 "the audit key"))
        elif not hmac.compare_digest(event.hash, digest(event)):
            report.breaks.append(Break(event.id, "its content does not match its hash: altered (or re-hashed "
                                                 "without the audit key)"))
        keyed_seen = keyed_seen or event.scheme == KEYED
        prev, prev_id = event.hash, event.id
        report.checked += 1
    report.last_id, report.last_hash = prev_id, prev
    return report


def verify(checkpoint_path=None):
    """The whole check: every row (``walk``), the checkpoint file's own integrity, and the chain against the
    newest valid checkpoint (a deleted tail or an emptied table). Returns a ``Report``."""
    from . import checkpoints

    report = walk()
    checkpoints.compare(report, checkpoint_path)
    return report
