"""Writing and verifying the audit trail.

Every row carries the SHA-256 of its content and of the previous row's hash, so removing or editing a
row anywhere breaks the chain from that point on (``verify_chain``). Rows are written inside the caller's
transaction: an operation that rolls back leaves no audit row behind, and one that commits always has one.
"""
import hashlib
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from .middleware import current_request_id
from .models import AuditEvent

GENESIS = "0" * 64
SYSTEM = "system"  # the actor of work nobody started by hand: the deployment engine, Celery beat, signals
_LOCK_KEY = 727274  # pg advisory lock serialising appends to the chain


def _normalise(value):
    """What a JSONField gives back after a round trip, so the hash is computed on stored data."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _digest(*, prev_hash, created_at, actor_username, action, object_type, object_id, before, after, reason,
            request_id):
    payload = json.dumps(
        [prev_hash, created_at.isoformat(), actor_username, action, object_type, object_id, before, after,
         reason, request_id],
        sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def snapshot(instance, fields=None, exclude=()):
    """A JSON-able dict of a model instance's editable fields (M2M as sorted id lists, JSON as stored)."""
    data = model_to_dict(instance, fields=fields, exclude=exclude)
    many = {f.name for f in instance._meta.many_to_many}
    for key, value in list(data.items()):
        if key in many:  # related rows as a sorted id list; a JSON list keeps its order
            data[key] = sorted(getattr(v, "pk", v) for v in value)
        elif hasattr(value, "pk"):
            data[key] = value.pk
    return _normalise(data)


def diff(before, after):
    """Only the keys whose values changed: (before_subset, after_subset)."""
    before = before or {}
    after = after or {}
    keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def actor_name(by):
    """How the trail names an actor: a person by user name; ``None`` (or ``"system"``) as "system"; a named
    system actor (a management command, say) by its name."""
    if getattr(by, "is_authenticated", False):
        return by.get_username()
    if isinstance(by, str) and by.strip():
        return by.strip()[:150]
    return SYSTEM


def record(*, action, obj=None, object_type=None, object_id=None, object_repr=None, by=None, before=None,
           after=None, reason=""):
    """Append one audit event. Call inside the transaction of the change it describes."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id if object_id is not None else str(obj.pk)
        object_repr = object_repr if object_repr is not None else str(obj)[:200]
    actor = by if getattr(by, "is_authenticated", False) else None
    values = {
        "created_at": timezone.now(),
        "actor_username": actor_name(by),
        "action": action,
        "object_type": object_type or "",
        "object_id": str(object_id or ""),
        "before": _normalise(before),
        "after": _normalise(after),
        "reason": reason or "",
        "request_id": current_request_id(),
    }
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        prev_hash = last or GENESIS
        digest = _digest(prev_hash=prev_hash, **values)
        return AuditEvent.objects.create(
            actor=actor, object_repr=(object_repr or "")[:200], prev_hash=prev_hash, hash=digest, **values
        )


def verify_chain():
    """Walk the trail oldest first; return (ok, first_bad_event_id_or_None, rows_checked)."""
    prev = GENESIS
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        expected = _digest(
            prev_hash=prev, created_at=event.created_at, actor_username=event.actor_username,
            action=event.action, object_type=event.object_type, object_id=event.object_id,
            before=event.before, after=event.after, reason=event.reason, request_id=event.request_id,
        )
        if event.prev_hash != prev or event.hash != expected:
            return False, event.id, checked
        prev = event.hash
        checked += 1
    return True, None, checked
