"""``Idempotency-Key`` on the API's POSTs (creating releases and deployments, reporting gate results, every
transition): a retried request gets the first answer instead of doing the work twice.

- The key belongs to whoever sends it (the API token's hash, or the session's user): two clients never share one.
- The same key with the same request (method, path with its query, body) answers the stored response, status and
  body as first given, with ``Idempotent-Replayed: true``.
- The same key with another request is a 422 saying so; while the first request with that key is still running,
  a second is a 409 (retry later).
- Answers of 500 and above are not kept (the work did not happen, or not all of it: the transaction rolled back),
  so a retry runs again; nor are streaming answers. Keys are kept for ``IDEMPOTENCY_TTL`` (24 h), after which a key
  may be used again; a request that died while holding its key frees it after ``PENDING_TTL``.
"""
import datetime as dt
import hashlib
import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
PREFIXES = ("/api/v1/",)
KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces (a UUID, say)
IDEMPOTENCY_TTL = dt.timedelta(hours=24)
PENDING_TTL = dt.timedelta(minutes=5)
MAX_STORED_BYTES = 1024 * 1024


def owner_of(request):
    """Who the key belongs to: the bearer of an Authorization header (its hash) or the session's user; None
    when the request is anonymous (it will be refused anyway: nothing to keep)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        return "auth:" + hashlib.sha256(header.encode()).hexdigest()
    user = getattr(request, "user", None)
    if getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return None


def fingerprint(request):
    body = request.body
    return hashlib.sha256(b"\n".join([request.method.encode(), request.get_full_path().encode(), body])).hexdigest()


def claim(*, owner, key, request_hash, now=None):
    """Take the key for a new request, or say what to do instead: ("run", record) | ("replay", record) |
    ("mismatch", record) | ("busy", record)."""
    now = now or timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                return "run", IdempotencyRecord.objects.create(owner=owner, key=key, request_hash=request_hash,
                                                               created_at=now)
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(owner=owner, key=key).first()
            if existing is None:
                continue  # freed meanwhile: try again
            stale = (existing.created_at < now - IDEMPOTENCY_TTL
                     or (existing.status_code is None and existing.created_at < now - PENDING_TTL))
            if stale:
                IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
                continue
            if existing.request_hash != request_hash:
                return "mismatch", existing
            if existing.status_code is None:
                return "busy", existing
            return "replay", existing
    return "busy", None


def complete(record, response):
    """Keep the answer for replays (or free the key when it must not be kept)."""
    content = b"" if response.streaming else response.content
    if response.streaming or response.status_code >= 500 or len(content) > MAX_STORED_BYTES:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status_code=response.status_code, content_type=response.get("Content-Type", "")[:100],
        body=content.decode("utf-8", errors="replace"), location=response.get("Location", "")[:500])


def replay(record):
    response = HttpResponse(record.body.encode(), status=record.status_code, content_type=record.content_type)
    if record.location:
        response["Location"] = record.location
    response["Idempotent-Replayed"] = "true"
    return response


class IdempotencyMiddleware:
    """Applies ``Idempotency-Key`` to POSTs under ``PREFIXES`` (after authentication middleware: the session's
    user is known; API tokens are told apart by their header)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.headers.get(HEADER)
        if key is None or request.method != "POST" or not request.path.startswith(PREFIXES):
            return self.get_response(request)
        if not KEY.match(key):
            return JsonResponse({"detail": f"{HEADER} must be 1 to 255 printable ASCII characters without spaces "
                                           "(a UUID, say)"}, status=400)
        owner = owner_of(request)
        if owner is None:
            return self.get_response(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and int(request.META.get("CONTENT_LENGTH") or 0) > limit:
            return JsonResponse({"detail": f"a request with {HEADER} may carry at most {limit} bytes (its body is "
                                           "kept to compare retries): send a smaller body, or no key"}, status=413)
        outcome, record = claim(owner=owner, key=key, request_hash=fingerprint(request))
        if outcome == "replay":
            return replay(record)
        if outcome == "mismatch":
            return JsonResponse({"detail": f"{HEADER} {key!r} was used for another request (a different body, "
                                           "method or path): use a new key for a new request",
                                 "code": "idempotency_key_reused"}, status=422)
        if outcome == "busy":
            response = JsonResponse({"detail": f"a request with {HEADER} {key!r} is still being processed: "
                                               "retry in a moment", "code": "idempotency_key_in_use"}, status=409)
            response["Retry-After"] = "1"
            return response
        try:
            response = self.get_response(request)
        except BaseException:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            raise
        complete(record, response)
        return response



def prune(now=None):
    """Delete the keys past ``IDEMPOTENCY_TTL`` (beat, hourly); returns how many."""
    cutoff = (now or timezone.now()) - IDEMPOTENCY_TTL
    return IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()[0]
