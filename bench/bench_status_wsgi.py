"""WSGI app for the status benchmarks: the portal exactly as deployed, plus one empty JSON view
(``/bench/empty.json``) that goes through the same middleware and URL resolution, as the baseline."""
import os

import django
from django.conf import settings
from django.http import JsonResponse
from django.urls import include, path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")
django.setup()


def empty(request):
    return JsonResponse({})


# After the portal's own routes, beside the status page's: both pay the same URL resolution.
urlpatterns = [path("", include("pmrelease.urls")), path("bench/empty.json", empty)]
settings.ROOT_URLCONF = __name__

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
