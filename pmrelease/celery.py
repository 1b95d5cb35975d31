"""The Celery application, configured from Django settings (CELERY_* names)."""
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmrelease.settings")

app = Celery("pmrelease")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect(weak=False)
def _structured_logging(**kwargs):
    """Celery leaves logging to the portal (pmrelease.logs, applied from settings.LOGGING by Django's setup):
    a receiver of this signal stops Celery from installing its own handlers and levels."""
    import logging
    import logging.config

    from django.conf import settings

    if not logging.getLogger().handlers:
        logging.config.dictConfig(settings.LOGGING)
