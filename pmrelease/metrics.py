"""The portal's Prometheus metrics.

Two kinds:

- **Instruments** (counters and histograms) that the code updates as things happen: HTTP requests, deployment
  outcomes, rollbacks, step durations, trigger evaluations, Celery tasks. They run in prometheus-client's
  multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by settings before the library is imported), so the
  gunicorn workers, the Celery workers and beat on one host write to one directory and /metrics shows the sum.
  Updates that describe a database change happen ``on_commit`` (a rolled-back deployment step counts nowhere).
- **Collectors** that read the current state when /metrics is scraped (releases by status, the audit trail's
  size, flag evaluations from the usage counters, queue lengths, alert states): each app registers its own at
  start-up (``register``).
"""
import logging
import os
import time

from django.db import DatabaseError, transaction
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from .registry import Hook

logger = logging.getLogger(__name__)
_collectors = {}

MULTIPROCESS = values.ValueClass is not values.MutexValue
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not MULTIPROCESS:  # pragma: no cover - a wiring error
    logger.warning("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set: /metrics shows "
                   "this process only")

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
STEP_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)

# The names of the seed's alert rules (``http_requests_total``, ``http_request_duration_seconds``), so that the
# default rules can watch the portal itself.
http_requests = Counter("http_requests_total", "HTTP requests answered, by view, method and status",
                        ["view", "method", "status"])
http_duration = Histogram("http_request_duration_seconds", "Time to answer an HTTP request, by view",
                          ["view", "method"], buckets=DURATION_BUCKETS)
deployments = Counter("pmrelease_deployments_total", "Deployments that ended, by environment and outcome",
                      ["environment", "outcome"])
rollbacks = Counter("pmrelease_rollbacks_total", "Deployments rolled back, by environment and kind "
                    "(automatic: the engine on a failed step or a fired trigger; manual: an operator)",
                    ["environment", "kind"])
step_duration = Histogram("pmrelease_deployment_step_duration_seconds", "Duration of deployment steps that "
                          "ended, by kind, phase and status", ["kind", "phase", "status"], buckets=STEP_BUCKETS)
trigger_evaluations = Counter("pmrelease_trigger_evaluations_total", "Rollback trigger evaluations, by decision "
                              "and source (watch: the scheduled watch; analysis: a deployment's analysis step)",
                              ["decision", "source"])
task_duration = Histogram("pmrelease_celery_task_duration_seconds", "Celery task run time, by task and state",
                          ["task", "state"], buckets=(*DURATION_BUCKETS, 60, 300))
task_failures = Counter("pmrelease_celery_task_failures_total", "Celery tasks that raised, by task and exception",
                        ["task", "exception"])


def on_commit(callback):
    """Run ``callback`` when the current transaction commits (at once outside one); a metric never fails the
    operation it measures."""
    def safe():
        try:
            callback()
        except Exception:  # noqa: BLE001 - metrics are best effort
            logger.exception("recording a metric failed")

    transaction.on_commit(safe)


# --- collectors: read at scrape time -------------------------------------------------------------------------
def register(name, collector):
    """Register a collector once per process: an object with ``collect()`` yielding metric families and
    ``describe()`` returning them empty (so that registering runs no query)."""
    if name in _collectors:
        return
    _collectors[name] = collector
    if not MULTIPROCESS:
        REGISTRY.register(collector)


def exposition_registry():
    """What /metrics serves: the instruments of every process (multiprocess mode) or of this one, and the
    collectors."""
    if not MULTIPROCESS:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    for collector in _collectors.values():
        registry.register(collector)
    return registry


# The alert engine provides it: alert_states() -> iterable of (alert name, environment name, severity, state),
# state one of "firing", "pending", "resolved" … /metrics shows ``pmrelease_alerts`` with 1 per alert.
alert_states = Hook("metrics_alert_states", "the alert engine: the state of each alert rule for /metrics")


class AlertCollector:
    def describe(self):
        return [GaugeMetricFamily("pmrelease_alerts", "Alert rules by state (1 per rule)",
                                  labels=["alertname", "environment", "severity", "state"])]

    def collect(self):
        if not alert_states.provided:
            return
        gauge = GaugeMetricFamily("pmrelease_alerts", "Alert rules by state (1 per rule)",
                                  labels=["alertname", "environment", "severity", "state"])
        try:
            for name, environment, severity, state in alert_states():
                gauge.add_metric([name, environment, severity, state], 1)
        except DatabaseError:
            return
        yield gauge


class QueueCollector:
    """Messages waiting in the Celery broker's queues (Redis: the list's length; embedded: the filesystem
    transport's files), read at scrape time."""

    def describe(self):
        return [GaugeMetricFamily("pmrelease_celery_queue_length", "Messages waiting in a Celery queue",
                                  labels=["queue"])]

    def collect(self):
        from .celery import app

        gauge = GaugeMetricFamily("pmrelease_celery_queue_length", "Messages waiting in a Celery queue",
                                  labels=["queue"])
        names = sorted({q.name for q in (app.amqp.queues or {}).values()} or {app.conf.task_default_queue})
        try:
            with app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
                channel = conn.default_channel
                for name in names:
                    try:
                        count = channel.queue_declare(queue=name, passive=True).message_count
                    except Exception:  # noqa: BLE001 - a queue nobody declared yet holds nothing
                        count = 0
                    gauge.add_metric([name], count)
        except Exception:  # noqa: BLE001 - the broker being away is readyz's to say, not a failed scrape
            return
        yield gauge


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


# --- Celery ------------------------------------------------------------------------------------------------
_task_started = {}


def task_prerun(task_id=None, **kwargs):
    _task_started[task_id] = time.perf_counter()


def task_postrun(task_id=None, task=None, state=None, **kwargs):
    started = _task_started.pop(task_id, None)
    if started is not None and task is not None:
        task_duration.labels(task.name, state or "unknown").observe(time.perf_counter() - started)


def task_failure(sender=None, exception=None, **kwargs):
    task_failures.labels(getattr(sender, "name", "unknown"), type(exception).__name__).inc()


def connect_celery_signals():
    from celery import signals

    signals.task_prerun.connect(task_prerun, weak=False, dispatch_uid="pmrelease.metrics.prerun")
    signals.task_postrun.connect(task_postrun, weak=False, dispatch_uid="pmrelease.metrics.postrun")
    signals.task_failure.connect(task_failure, weak=False, dispatch_uid="pmrelease.metrics.failure")
