"""Celery beat entries of the flags app (merged into CELERY_BEAT_SCHEDULE by settings; no Django import)."""

SCHEDULE = {}
