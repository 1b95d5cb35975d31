"""Celery beat entries of the monitoring app (merged into CELERY_BEAT_SCHEDULE by settings; no Django import)."""

SCHEDULE = {}
