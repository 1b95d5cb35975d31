"""Celery beat entries of the releases app (merged into CELERY_BEAT_SCHEDULE by settings; no Django import)."""
from celery.schedules import crontab

SCHEDULE = {
    "release-cadence-check": {"task": "releases.tasks.release_cadence_check", "schedule": crontab(hour=7, minute=0)},
    "deployment-watchdog": {"task": "releases.tasks.deployment_watchdog", "schedule": 15.0},
}
