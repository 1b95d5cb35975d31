"""Signed outbound webhooks: the payload, the signature, and how a receiver checks it (pure; no Django).

Every delivery is ``POST <url>`` with a JSON body (``payload``; schema ``WebhookEvent`` in the OpenAPI document)
and these headers:

- ``Content-Type: application/json``
- ``X-PMR-Event``: the event kind, e.g. ``deployment.succeeded``
- ``X-PMR-Delivery``: the event's id (the same on every retry and redelivery: deduplicate on it)
- ``X-PMR-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is HMAC-SHA256 under the channel's secret of
  the bytes ``"<t>." + body`` (the raw body as received)

A receiver recomputes the HMAC over ``f"{t}.".encode() + raw_body``, compares it in constant time with ``v1``,
and refuses a ``t`` more than ``REPLAY_WINDOW_SECONDS`` (5 minutes) from its own clock (``verify``). Any 2xx
answer is a delivery; anything else (or no answer within the timeout) is retried with exponential backoff.
"""
import hashlib
import hmac
import json
import time

SIGNATURE_HEADER = "X-PMR-Signature"
EVENT_HEADER = "X-PMR-Event"
DELIVERY_HEADER = "X-PMR-Delivery"
REPLAY_WINDOW_SECONDS = 300
SCHEMA_VERSION = 1


def payload(*, delivery_id, event, created_at, environment, title, severity, data):
    """The body's object: stable keys, ``data`` per event (documented in ``WebhookEvent``)."""
    return {"schema_version": SCHEMA_VERSION, "id": delivery_id, "event": event, "created_at": created_at,
            "environment": environment or None, "title": title, "severity": severity, "data": data or {}}


def body_bytes(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def signature(secret, body, timestamp):
    mac = hmac.new(secret.encode(), f"{int(timestamp)}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v1={mac}"


class InvalidSignature(Exception):
    pass


def verify(secret, body, header, *, now=None, window=REPLAY_WINDOW_SECONDS):
    """Check a received delivery (what a receiver does); returns the parsed payload or raises InvalidSignature."""
    try:
        fields = dict(part.split("=", 1) for part in (header or "").split(","))
        timestamp, given = int(fields["t"]), fields["v1"]
    except (KeyError, ValueError):
        raise InvalidSignature("malformed signature header") from None
    if abs((now if now is not None else time.time()) - timestamp) > window:
        raise InvalidSignature("timestamp outside the replay window")
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, given):
        raise InvalidSignature("signature mismatch")
    return json.loads(body)
