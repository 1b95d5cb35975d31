"""Prometheus metrics of the releases app, collected when /metrics is scraped."""
from django.db import DatabaseError
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from .models import Release, ReleaseStatus


class ReleasesCollector:
    def describe(self):
        return [GaugeMetricFamily("pmrelease_releases", "Releases by status", labels=["status"])]

    def collect(self):
        gauge = GaugeMetricFamily("pmrelease_releases", "Releases by status", labels=["status"])
        try:
            counts = dict(Release.objects.values_list("status").annotate(n=Count("id")))
        except DatabaseError:
            return
        for status in ReleaseStatus.values:
            gauge.add_metric([status], counts.get(status, 0))
        yield gauge
