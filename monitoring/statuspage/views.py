"""Public views: the published static files (no database needed) and the subscription flows."""
import logging
import mimetypes
import os
from email.utils import formatdate, parsedate_to_datetime

from django import db
from django.http import Http404, HttpResponse, HttpResponseNotModified, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from pmrelease import errors

from . import publishing, subscribers

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".atom": "application/atom+xml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


_CACHE = {}  # path -> (mtime_ns, size, bytes): small published files kept in memory per process
_CACHE_MAX_FILES = 512
_CACHE_MAX_BYTES = 2 * 1024 * 1024


def _read(path, stat):
    key = str(path)
    hit = _CACHE.get(key)
    if hit and hit[0] == stat.st_mtime_ns and hit[1] == stat.st_size:
        return hit[2]
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) <= _CACHE_MAX_BYTES:
        if len(_CACHE) >= _CACHE_MAX_FILES:
            _CACHE.clear()
        _CACHE[key] = (stat.st_mtime_ns, stat.st_size, data)
    return data


def _resolve(path):
    """(file path, redirect?) for a URL path under /status/; None for anything outside the site or hidden.

    Pure string work (no realpath): every segment is checked, so "..", "." and hidden names never reach the
    file system, and the publisher creates no symlinks. Kept cheap: this runs on every public request.
    """
    if "\x00" in path or "\\" in path or len(path) > 512:
        return None, False
    parts = path.split("/")
    if any(len(part) > 200 for part in parts):
        return None, False
    for part in parts[:-1]:
        if not part or part[0] == ".":
            return None, False
    last = parts[-1]
    if last.startswith("."):
        return None, False
    root = str(publishing.site_root())
    if not last:
        return os.path.join(root, *parts[:-1], "index.html") if len(parts) > 1 else os.path.join(root, "index.html"), False
    candidate = os.path.join(root, *parts)
    if "." not in last and os.path.isdir(candidate):
        return candidate, True  # redirect to the slash form, as nginx does
    return candidate, False


def _stat(path):
    try:
        return os.stat(path)
    except (OSError, ValueError):  # missing, not a directory, name too long, embedded NUL: all "not found"
        return None


@require_http_methods(["GET", "HEAD"])
def published(request, path=""):
    """Serve a file of the published site. Reads only the publish directory: no database, no broker.

    Serves the precompressed ``.gz`` sibling to clients that accept gzip. When nothing has been published
    yet (a fresh checkout), it publishes once synchronously; if that fails because the database is down or
    the publish directory cannot be written, it answers 503 with Retry-After (any other error is a bug and
    propagates).
    """
    candidate, redirect = _resolve(path)
    if candidate is None:
        raise Http404("not published")
    if redirect:
        return HttpResponseRedirect(request.path + "/")
    suffix = os.path.splitext(candidate)[1]
    content_type = CONTENT_TYPES.get(suffix)
    served, encoding, stat = candidate, None, None
    if content_type and "gzip" in request.META.get("HTTP_ACCEPT_ENCODING", ""):
        stat = _stat(candidate + ".gz")
        if stat is not None:
            served, encoding = candidate + ".gz", "gzip"
    if stat is None:
        stat = _stat(candidate)
    if stat is None:
        if os.path.exists(os.path.join(str(publishing.site_root()), "index.html")):
            raise Http404("not published")
        try:
            publishing.publish_site()
        except (db.Error, OSError) as exc:  # database down, or publish directory unwritable: 503 below
            log.warning("status page: nothing published yet, and publishing now failed: %r", exc)
        stat = _stat(candidate)
        if stat is None and os.path.exists(os.path.join(str(publishing.site_root()), "index.html")):
            raise Http404("not published")  # the site is there now; this file is not part of it
        if stat is None:
            response = HttpResponse("The status page has not been published yet.", status=503,
                                    content_type="text/plain; charset=utf-8")
            response["Retry-After"] = "30"
            return response
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}{"-gz" if encoding else ""}"'
    if request.META.get("HTTP_IF_NONE_MATCH") == etag or _not_modified_since(request, stat.st_mtime):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(_read(served, stat), content_type=content_type or mimetypes.guess_type(candidate)[0]
                                or "application/octet-stream")
        if encoding:
            response["Content-Encoding"] = encoding
    if content_type:
        response["Vary"] = "Accept-Encoding"
    response["ETag"] = etag
    response["Last-Modified"] = formatdate(stat.st_mtime, usegmt=True)
    response["Cache-Control"] = "public, max-age=30"
    if suffix == ".json":
        response["Access-Control-Allow-Origin"] = "*"
    return response


def _not_modified_since(request, mtime):
    header = request.headers.get("If-Modified-Since")
    if not header or request.headers.get("If-None-Match"):
        return False
    try:
        return int(mtime) <= parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return False


def _message(request, title, message, status=200, form=None):
    return render(request, "status/message.html", {"title": title, "message": message, "form": form},
                  status=status)


@csrf_exempt  # posted from the static page, which cannot carry a CSRF token; it only starts an opt-in
@require_http_methods(["GET", "POST"])
def subscribe(request):
    if request.method == "GET":
        return HttpResponseRedirect("/status/#subscribe")
    try:
        subscribers.subscribe_email(email=request.POST.get("email", ""),
                                    component_ids=request.POST.getlist("components"))
    except errors.DomainError as exc:
        detail = "; ".join(m for msgs in exc.field_errors.values() for m in msgs) or exc.message
        return _message(request, "Subscription not started", detail, status=400)
    return _message(request, "Check your inbox",
                    "If this address is not subscribed yet, we have sent it a link to confirm the subscription. "
                    "Nothing is sent until you confirm.")


@csrf_exempt  # the signed token is the credential
@require_http_methods(["GET", "POST"])
def confirm(request, token):
    try:
        subscriber = subscribers.read_token(token, "confirm", max_age=subscribers.CONFIRM_MAX_AGE)
        if request.method == "GET":
            return _message(request, "Confirm your subscription",
                            f"Confirm that {subscriber.email} should receive status notifications.",
                            form={"action": request.path, "button": "Confirm subscription"})
        subscribers.subscription_confirm(token=token)
    except errors.DomainError as exc:
        return _message(request, "Link not valid", exc.message, status=400)
    return _message(request, "Subscribed", "You will receive incident and maintenance notifications. Every "
                    "message carries a one-click unsubscribe link.")


@csrf_exempt  # RFC 8058 one-click unsubscribe: mail clients POST without any session
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    try:
        subscriber = subscribers.read_token(token, "unsubscribe", max_age=subscribers.unsubscribe_max_age())
        if request.method == "GET":
            return _message(request, "Unsubscribe", f"Stop status notifications to {subscriber}?",
                            form={"action": request.path, "button": "Unsubscribe"})
        subscribers.unsubscribe(token=token)
    except errors.DomainError as exc:
        return _message(request, "Link not valid", exc.message, status=400)
    return _message(request, "Unsubscribed", "You will not receive status notifications any more.")
