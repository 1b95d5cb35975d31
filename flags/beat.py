"""Celery beat entries of the flags app (merged into CELERY_BEAT_SCHEDULE by settings; no Django import)."""
from celery.schedules import crontab

SCHEDULE = {
    "flags-advance-ramps": {"task": "flags.tasks.advance_ramps", "schedule": 30.0},
    "flags-notify-stale": {"task": "flags.tasks.notify_stale_flags", "schedule": crontab(hour=7, minute=30)},
}
