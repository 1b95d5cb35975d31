import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")
django_application = get_wsgi_application()

# The apps' own WSGI applications in front of Django (settings.WSGI_MOUNTS, named like the apps' URLs: the ground
# floor imports no app). The flag edge answers OFREP and the Unleash APIs without Django's request cycle.
application = django_application
for _mount in settings.WSGI_MOUNTS:
    application = import_string(_mount)(application)
