"""Celery beat entries of the releases app (merged into CELERY_BEAT_SCHEDULE by settings; no Django import)."""
import os

from celery.schedules import crontab

SCHEDULE = {
    "release-cadence-check": {"task": "releases.tasks.release_cadence_check", "schedule": crontab(hour=7, minute=0)},
    # Hands steps whose worker vanished (lease not renewed) to another worker: settings.DEPLOY_WATCHDOG_SECONDS.
    "deployment-watchdog": {"task": "releases.tasks.deployment_watchdog",
                            "schedule": float(os.environ.get("DEPLOY_WATCHDOG_SECONDS", "5")),
                            "options": {"expires": float(os.environ.get("DEPLOY_WATCHDOG_SECONDS", "5")) * 2}},
    # Evaluate every rollback trigger of every watched deployment (running, or in its bake time).
    # The interval is settings.MONITORING_TICK_SECONDS (read here from the environment: no Django import).
    "rollback-trigger-watch": {"task": "releases.tasks.watch_deployments",
                               "schedule": float(os.environ.get("MONITORING_TICK_SECONDS", "30"))},
    # Secret references: Vault rotation metadata refreshed; owners told of due / in-grace / overdue ones.
    "secret-rotation-check": {"task": "releases.tasks.secret_rotation_check", "schedule": crontab(minute=23)},
    "rollback-trigger-prune": {"task": "releases.tasks.prune_evaluations", "schedule": crontab(minute=41)},
}
