"""Prometheus gauges describing the portal's state, refreshed when /metrics is scraped."""
from django.db.models import Count
from prometheus_client import Gauge

RELEASES = Gauge("pmrelease_releases", "Releases by status", ["status"])
AUDIT_EVENTS = Gauge("pmrelease_audit_events", "Rows in the audit trail")


def refresh():
    from releases.models import Release, ReleaseStatus

    counts = dict(Release.objects.values_list("status").annotate(n=Count("id")))
    for status in ReleaseStatus.values:
        RELEASES.labels(status=status).set(counts.get(status, 0))
    from .models import AuditEvent

    AUDIT_EVENTS.set(AuditEvent.objects.count())
