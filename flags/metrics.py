"""Prometheus metrics of the flags app, read when /metrics is scraped: evaluations per environment from the
usage counters (``FlagMetricsBucket``: the server APIs' in-memory counts, flushed every
FLAGS_USAGE_FLUSH_SECONDS, and the Unleash SDKs' reported metrics), never a lock on the request path."""
from django.db import DatabaseError
from django.db.models import Sum
from prometheus_client.core import CounterMetricFamily

from .models import FlagMetricsBucket

NAME, HELP = "pmrelease_flag_evaluations", "Flag evaluations counted, by environment and result (enabled or not)"


class FlagEvaluationsCollector:
    def describe(self):
        return [CounterMetricFamily(NAME, HELP, labels=["environment", "result"])]

    def collect(self):
        counter = CounterMetricFamily(NAME, HELP, labels=["environment", "result"])
        try:
            rows = list(FlagMetricsBucket.objects.values("environment__name")
                        .annotate(yes=Sum("yes"), no=Sum("no")).order_by("environment__name"))
        except DatabaseError:
            return
        for row in rows:
            counter.add_metric([row["environment__name"], "enabled"], row["yes"] or 0)
            counter.add_metric([row["environment__name"], "disabled"], row["no"] or 0)
        yield counter
