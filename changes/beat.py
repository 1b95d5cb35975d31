"""Celery beat entries of the changes app (merged into CELERY_BEAT_SCHEDULE by settings; no Django import)."""
from celery.schedules import crontab

SCHEDULE = {
    # Close validated changes whose deployments passed their health checks and bake time.
    "changes-close-validated": {"task": "changes.tasks.close_validated", "schedule": 60.0},
    # Remind operations of emergency changes still waiting for their review (each at most once a day).
    "changes-remind-open-reviews": {"task": "changes.tasks.remind_open_reviews", "schedule": crontab(minute=5)},
}
