"""The portal as an ASGI application (``uvicorn pmrelease.asgi:application``): what serves the waits — long-polls
(``GET /api/v1/deployments/<id>/?wait=``) and event streams (``…/events/``) — as coroutines instead of one thread
each (docs/pipelines.md).

Django runs a request through a thread whenever one middleware of its stack is synchronous, so the waits go to
a second handler whose stack is only async-capable middleware (``WAIT_MIDDLEWARE``: security headers, session,
authentication); every other request goes through the full stack (its sync views run in threads as usual). The
flag edge's WSGI mount is not in front of this application: OFREP and the Unleash APIs stay on the WSGI server.
"""
import os
import re

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")
django_application = get_asgi_application()
# No persistent connections in this process: Django's ASGI handler runs each request's sync code in a thread of
# its own, so a connection kept for CONN_MAX_AGE would outlive its thread unused (one per request, until garbage
# collection). The waits close theirs as soon as they have rendered (releases.api.waits).
for _alias in settings.DATABASES:
    settings.DATABASES[_alias]["CONN_MAX_AGE"] = 0

WAIT_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
_DETAIL = re.compile(r"^/api/v1/deployments/\d+/$")
_EVENTS = re.compile(r"^/api/v1/deployments/\d+/events/$")
_WAIT = re.compile(rb"(^|&)wait=")


class WaitsHandler(ASGIHandler):
    """Django's ASGI handler with the async-only middleware stack."""

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = WAIT_MIDDLEWARE
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = full


waits_application = WaitsHandler()


def is_wait(scope):
    if scope["type"] != "http" or scope.get("method") != "GET":
        return False
    path = scope.get("path", "")
    return bool(_EVENTS.match(path) or (_DETAIL.match(path) and _WAIT.search(scope.get("query_string", b""))))


async def application(scope, receive, send):
    handler = waits_application if is_wait(scope) else django_application
    await handler(scope, receive, send)
