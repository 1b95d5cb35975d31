"""The portal as an ASGI application (``uvicorn pmrelease.asgi:application``): what serves the waits — long-polls
(``?wait=``) and event streams of deployments — as coroutines instead of one thread each (docs/pipelines.md).
Every other route works here too (sync views run in threads); the flag edge's WSGI mount is not in front of it
(OFREP and Unleash stay on the WSGI server)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")
application = get_asgi_application()
