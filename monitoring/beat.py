"""Celery beat entries of the monitoring app (merged into CELERY_BEAT_SCHEDULE by settings; no Django import)."""
import os

from celery.schedules import crontab

SCHEDULE = {
    # Start and complete scheduled maintenance on time; send reminders before it starts.
    "status-maintenance-tick": {"task": "monitoring.tasks.maintenance_tick", "schedule": 60.0},
    # Re-publish the static site so uptime figures and the day bars move on without any change.
    "status-publish": {"task": "monitoring.tasks.publish_status_site", "schedule": 300.0},
    # Evaluate the enabled alert rules (ALERT_EVALUATION_SECONDS, as in settings).
    "alert-rules-evaluate": {"task": "monitoring.tasks.evaluate_alert_rules",
                             "schedule": float(os.environ.get("ALERT_EVALUATION_SECONDS", "30"))},
    # Drop builtin metric samples older than METRICS_RETENTION_DAYS.
    "metrics-prune": {"task": "monitoring.tasks.prune_metrics", "schedule": crontab(minute=23)},
    # Drop alert rule state changes older than ALERT_EVENT_RETENTION_DAYS.
    "alert-events-prune": {"task": "monitoring.tasks.prune_alert_events", "schedule": crontab(minute=29)},
}
