"""Prometheus metrics of the releases app, collected when /metrics is scraped."""
from django.db import DatabaseError
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from pmrelease import metrics

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


class DeploymentQueueCollector:
    """Deployments waiting to start (pending: queued behind another or not yet picked up), by environment."""

    def describe(self):
        return [GaugeMetricFamily("pmrelease_deployments_pending", "Deployments waiting to start, by environment",
                                  labels=["environment"])]

    def collect(self):
        from .models import Deployment, DeploymentStatus, Environment

        gauge = GaugeMetricFamily("pmrelease_deployments_pending", "Deployments waiting to start, by environment",
                                  labels=["environment"])
        try:
            counts = dict(Deployment.objects.filter(status=DeploymentStatus.PENDING)
                          .values_list("environment__name").annotate(n=Count("id")))
            names = list(Environment.objects.filter(is_active=True).values_list("name", flat=True))
        except DatabaseError:
            return
        for name in sorted(set(names) | set(counts)):
            gauge.add_metric([name], counts.get(name, 0))
        yield gauge


# --- instruments: updated when it happens (pmrelease.metrics), after the transaction commits -----------------
def on_deployment_finished(sender, *, deployment, automatic_rollback, **kwargs):
    """Receiver of ``deployment_finished``: the outcome by environment, and the rollback by kind."""
    environment, outcome = deployment.environment.name, deployment.status

    def record():
        metrics.deployments.labels(environment, outcome).inc()
        if outcome == "rolled_back":
            metrics.rollbacks.labels(environment, "automatic" if automatic_rollback else "manual").inc()

    metrics.on_commit(record)


def step_ended(step):
    """A deployment step succeeded or failed: its duration (from its start) by kind, phase and status."""
    if step.started_at is None or step.finished_at is None:
        return
    seconds = max((step.finished_at - step.started_at).total_seconds(), 0.0)
    kind, phase, status = step.kind, step.phase, step.status
    metrics.on_commit(lambda: metrics.step_duration.labels(kind, phase, status).observe(seconds))


def evaluations_recorded(rows, source):
    """Trigger evaluations written (``rows``: TriggerEvaluation objects), counted by decision."""
    counts = {}
    for row in rows:
        counts[row.decision] = counts.get(row.decision, 0) + 1

    def record():
        for decision, n in counts.items():
            metrics.trigger_evaluations.labels(decision, source).inc(n)

    if counts:
        metrics.on_commit(record)
