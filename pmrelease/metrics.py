"""The portal's Prometheus metrics: each app registers a collector for its own state at start-up
(``register``); a scrape of /metrics runs them all. The ground floor's own: the audit trail's size."""
from django.db import DatabaseError
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

_registered = set()


def register(name, collector):
    """Register a collector once per process: an object with ``collect()`` yielding metric families and
    ``describe()`` returning them empty (so that registering runs no query)."""
    if name in _registered:
        return
    REGISTRY.register(collector)
    _registered.add(name)


class AuditCollector:
    def describe(self):  # what it yields, without a query (registering a collector would otherwise collect)
        return [GaugeMetricFamily("pmrelease_audit_events", "Rows in the audit trail")]

    def collect(self):
        from .models import AuditEvent

        gauge = GaugeMetricFamily("pmrelease_audit_events", "Rows in the audit trail")
        try:
            gauge.add_metric([], AuditEvent.objects.count())
        except DatabaseError:  # a scrape must not fail because the database is away; readyz says so
            return
        yield gauge
