"""Waiting for a deployment over HTTP: ``GET /api/v1/deployments/<id>/?wait=SECONDS`` (long-poll) and
``GET /api/v1/deployments/<id>/events/`` (server-sent events). Both are async Django views: under the ASGI
server (``pmrelease.asgi``) a waiter is a coroutine woken by the loop's hub (``releases.deploy.waits``), not a
thread. Authentication, visibility (404) and the body are the DRF deployment view's own: these views call it.

Long-poll: the answer carries ``ETag`` (the deployment's fingerprint). ``?wait=S`` (0–60) answers as soon as
the fingerprint differs from ``If-None-Match`` (or, without it, from the state when the request arrived), or at
once when the deployment is terminal; after ``S`` seconds unchanged it answers 304 when ``If-None-Match`` was
sent, otherwise 200 with the unchanged body; ``Retry-After: 0`` says the client may poll again at once.
"""
import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from ..deploy import waits
from .views import DeploymentViewSet

_retrieve = DeploymentViewSet.as_view({"get": "retrieve"})


def _tag(etag):
    return f'"{etag}"'


def _untag(header):
    value = (header or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None


def _render(request, pk):
    """The DRF view's answer, rendered; then this thread's database connections are closed. Django's ASGI
    handler gives every request its own thread for sync code, so a connection left open there would stay open
    for the whole wait: 200 parked waiters held 200 PostgreSQL connections (past its default max_connections of
    100: "too many clients"). Under WSGI the connection of a test's transaction is left alone."""
    from django.db import connections

    try:
        response = _retrieve(request, pk=str(pk))
        if hasattr(response, "render"):
            response.render()
        return response
    finally:
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close()


_renderers = {}  # {loop: semaphore}: how many renderings of the waits' answers run at once, per event loop


def _renderer():
    import asyncio

    loop = asyncio.get_running_loop()
    for other in [other for other in _renderers if other.is_closed()]:
        del _renderers[other]
    if loop not in _renderers:
        _renderers[loop] = asyncio.Semaphore(settings.DEPLOYMENT_WAIT_RENDER_CONCURRENCY)
    return _renderers[loop]


async def _detail(request, pk):
    """The deployment's answer for this request, with at most DEPLOYMENT_WAIT_RENDER_CONCURRENCY renderings
    (so as many database connections) at once in this process, however many waiters arrive together."""
    async with _renderer():
        return await sync_to_async(_render)(request, pk)


async def deployment_detail(request, pk):
    """The deployment (the DRF view), or with ``?wait=`` its next state (long-poll)."""
    raw = request.GET.get("wait")
    if raw is None or request.method != "GET":
        etag = (await sync_to_async(waits.etag_of, thread_sensitive=False)(pk))[0]
        response = await _detail(request, pk)
        if response.status_code == 200 and etag and request.method in ("GET", "HEAD"):
            response["ETag"] = _tag(etag)
        return response
    try:
        seconds = waits.wait_seconds(raw)
    except ValueError as exc:
        return JsonResponse({"wait": [str(exc)]}, status=400)
    etag, status = await sync_to_async(waits.etag_of, thread_sensitive=False)(pk)  # before the body: a change
    first = await _detail(request, pk)  # in between wakes the wait at once
    if first.status_code != 200:
        return first
    client = _untag(request.headers.get("If-None-Match"))
    baseline = client or etag
    if status in waits.TERMINAL or baseline != etag or seconds == 0:
        changed = None if baseline == etag else (etag, status)
    else:
        changed = await waits.hub().wait(pk, baseline, seconds)
    if changed is None:
        if client is not None and client == etag:
            response = HttpResponse(status=304)
        else:
            response = first
        response["ETag"] = _tag(etag)
        response["Retry-After"] = "0"
        return response
    response = await _shared_detail(request, pk, changed[0])
    response["ETag"] = _tag(changed[0])
    return response


# Waiters woken by the same change with the same credentials get one rendering (200 CI jobs polling with one
# token, say): {(loop, deployment, etag, credentials): future of (status, content type, body)}.
_renderings = {}


async def _shared_detail(request, pk, etag):
    import asyncio

    who = request.headers.get("Authorization") or f"session:{request.COOKIES.get(settings.SESSION_COOKIE_NAME)}"
    key = (asyncio.get_running_loop(), pk, etag, who)
    future = _renderings.get(key)
    if future is None:
        future = _renderings[key] = asyncio.get_running_loop().create_future()
        try:
            response = await _detail(request, pk)
            future.set_result((response.status_code, response.get("Content-Type", ""), response.content))
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            asyncio.get_running_loop().call_later(5, _renderings.pop, key, None)
    status, content_type, body = await future
    return HttpResponse(body, status=status, content_type=content_type)


def _frame(event_id, name, data):
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data, sort_keys=True, default=str)}\n\n"


def _limit():
    return float(getattr(settings, "DEPLOYMENT_EVENTS_MAX_SECONDS", 1800))


async def deployment_events(request, pk):
    """The deployment's step log as it happens (text/event-stream): ``step``, ``log`` and ``status`` events,
    then ``end`` at the terminal state (or ``timeout`` after DEPLOYMENT_EVENTS_MAX_SECONDS)."""
    first = await _detail(request, pk)
    if first.status_code != 200:
        return first
    stream = _async_stream(pk) if isinstance(request, ASGIRequest) else _sync_stream(pk)
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _emit(counter, before, after):
    frames = []
    for name, data in waits.step_events(before, after):
        counter[0] += 1
        frames.append(_frame(counter[0], name, data))
    if after["status"] in waits.TERMINAL:
        counter[0] += 1
        frames.append(_frame(counter[0], "end", {"status": after["status"]}))
    return "".join(frames)


def _sync_stream(pk):
    """Under WSGI: one thread per stream, polling (see the module's docs)."""
    import time

    counter, before = [0], None
    deadline = time.monotonic() + _limit()
    last_sent = time.monotonic()
    while True:
        after = waits.snapshot(pk)
        if after is None:
            return
        chunk = _emit(counter, before, after)
        if chunk:
            yield chunk
            last_sent = time.monotonic()
        if after["status"] in waits.TERMINAL:
            return
        before = after
        if time.monotonic() >= deadline:
            yield _frame(counter[0] + 1, "timeout", {"after_seconds": _limit()})
            return
        if time.monotonic() - last_sent > 15:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        time.sleep(waits._poll_seconds())


async def _async_stream(pk):
    """Under ASGI: woken by the hub when the deployment changes."""
    import time

    counter, before = [0], None
    deadline = time.monotonic() + _limit()
    snapshot = sync_to_async(waits.snapshot, thread_sensitive=False)
    fingerprint = sync_to_async(waits.etag_of, thread_sensitive=False)
    while True:
        etag = (await fingerprint(pk))[0]  # before the snapshot: a change in between wakes the wait at once
        after = await snapshot(pk)
        if after is None:
            return
        chunk = _emit(counter, before, after)
        if chunk:
            yield chunk
        if after["status"] in waits.TERMINAL:
            return
        before = after
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            yield _frame(counter[0] + 1, "timeout", {"after_seconds": _limit()})
            return
        if await waits.hub().wait(pk, etag, min(15.0, remaining)) is None:
            yield ": keep-alive\n\n"
