"""The scheduled watch: every tick (beat, ``MONITORING_TICK_SECONDS``) judges every enabled trigger of every
watched deployment — running, or succeeded less than its environment's bake time ago — and acts.

One tick asks each environment's provider once for all its deployments and triggers. Deciding is done per
deployment under its row lock, on the triggers as they are then (their ``last_fired_at``): two ticks at once
(two beats, or a tick and an analysis step) never fire a trigger twice, and a deployment already rolling
back is left alone. Actions go through the existing services: ``rollback`` starts the engine's automatic
rollback (for a running deployment) or a post-success rollback (in its bake time), ``alert`` e-mails the
people who may deploy there and audits it, ``scale_up`` asks the backend to scale.
"""
import datetime as dt
import logging
import math
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pmrelease import audit, rules

from ..models import (
    Deployment,
    DeploymentStatus,
    DeploymentTarget,
    RollbackTrigger,
    TriggerAction,
    TriggerEvaluation,
)
from . import triggers

logger = logging.getLogger(__name__)

WATCHED_RUNNING = [DeploymentStatus.RUNNING, DeploymentStatus.PAUSED, DeploymentStatus.AWAITING_APPROVAL]


def watched(now):
    """The deployments to watch at ``now`` (datetime), with their environment, release and triggers."""
    longest_bake = dt.timedelta(days=7)
    candidates = (Deployment.objects.filter(Q(status__in=WATCHED_RUNNING)
                                            | Q(status=DeploymentStatus.SUCCEEDED, finished_at__gte=now - longest_bake))
                  .filter(triggers__enabled=True).distinct()
                  .select_related("environment", "release").prefetch_related("triggers"))
    return [d for d in candidates if d.status in WATCHED_RUNNING
            or (d.finished_at and (now - d.finished_at).total_seconds() <= d.environment.bake_seconds)]


def tick(*, now=None, dispatch=True):
    """One evaluation round. Returns a report: deployments and triggers judged, decisions, actions, queries."""
    now_ts = math.floor((now or time.time()) * 1000) / 1000  # milliseconds: exact as a stored timestamp
    moment = dt.datetime.fromtimestamp(now_ts, tz=dt.UTC)
    deployments = watched(moment)
    _simulated_traffic(deployments, now_ts)
    evaluations = [triggers.Evaluation(d, t, now=now_ts, tick=settings.MONITORING_TICK_SECONDS)
                   for d in deployments for t in d.triggers.all() if t.enabled]
    results = triggers.fetch(evaluations)
    report = {"deployments": len(deployments), "triggers": len(evaluations), "decisions": {}, "actions": []}
    by_deployment = {}
    for evaluation in evaluations:
        by_deployment.setdefault(evaluation.deployment.pk, []).append(evaluation)
    later = []
    for deployment_id, group in by_deployment.items():
        later += _decide(deployment_id, group, results, moment, report, dispatch)
    for action in later:  # backend I/O outside any transaction
        action()
    return report


def _decide(deployment_id, group, results, moment, report, dispatch):
    """Judge and act for one deployment under its row lock. Returns I/O to run after the commit."""
    later = []
    with transaction.atomic():
        dep = (Deployment.objects.select_for_update().select_related("environment", "release")
               .filter(pk=deployment_id).first())
        if dep is None or not (dep.status in WATCHED_RUNNING or dep.status == DeploymentStatus.SUCCEEDED):
            return later  # ended, or already rolling back, since the tick began
        current = {t.pk: t for t in RollbackTrigger.objects.filter(deployment=dep)}
        rows, rolled_back = [], False
        for evaluation in group:
            trigger = current.get(evaluation.trigger.pk)
            if trigger is None or not trigger.enabled:
                continue
            evaluation.deployment, evaluation.trigger = dep, trigger
            verdict = evaluation.judge(results, last_fired_at=trigger.last_fired_at)
            report["decisions"][verdict.decision] = report["decisions"].get(verdict.decision, 0) + 1
            rows.append(evaluation.record("watch"))
            if verdict.decision == rules.NO_DATA and trigger.no_data == "alert" and not rules.cooling_down(
                    evaluation.rule, evaluation.now, trigger.last_fired_at and trigger.last_fired_at.timestamp()):
                trigger.last_fired_at = moment
                trigger.save(update_fields=["last_fired_at"])
                _alert(dep, trigger, verdict)
                report["actions"].append(("alert", dep.pk))
                continue
            if not verdict.fires:
                continue
            trigger.last_fired_at = moment
            trigger.save(update_fields=["last_fired_at"])
            if trigger.action == TriggerAction.ROLLBACK and not rolled_back:
                rolled_back = True
                _rollback(dep, trigger, verdict, dispatch)
                report["actions"].append(("rollback", dep.pk))
            elif trigger.action == TriggerAction.ALERT:
                _alert(dep, trigger, verdict)
                report["actions"].append(("alert", dep.pk))
            elif trigger.action == TriggerAction.SCALE_UP:
                later.append(lambda dep=dep, trigger=trigger, verdict=verdict: _scale_up(dep, trigger, verdict))
                report["actions"].append(("scale_up", dep.pk))
        TriggerEvaluation.objects.bulk_create(rows)
    return later


def _rollback(dep, trigger, verdict, dispatch):
    from . import engine

    reason = f"rollback trigger fired: {verdict.detail}"
    post_success = dep.status == DeploymentStatus.SUCCEEDED
    engine.begin_rollback(dep, by=None, reason=("post-success " if post_success else "automatic ") + reason,
                          operator_action="rollback" if post_success else "abort", dispatch=dispatch)
    audit.record(action="deployment.trigger_fired", obj=dep, reason=verdict.detail,
                 after={"trigger": str(trigger), "action": "rollback", "post_success": post_success,
                        "value": verdict.value})


def _alert(dep, trigger, verdict):
    from ..tasks import send_trigger_alert

    audit.record(action="deployment.trigger_fired", obj=dep, reason=verdict.detail,
                 after={"trigger": str(trigger), "action": "alert", "value": verdict.value})
    send_trigger_alert.delay_on_commit(dep.pk, trigger.pk, verdict.detail)


def _scale_up(dep, trigger, verdict):
    from . import engine

    detail = engine.scale(dep, trigger.scale_factor)
    with transaction.atomic():
        audit.record(action="deployment.trigger_fired", obj=dep, reason=verdict.detail,
                     after={"trigger": str(trigger), "action": "scale_up", "factor": trigger.scale_factor,
                            "result": detail})


def _simulated_traffic(deployments, now):
    """Simulation targets stand in for applications: they push what their simulated traffic would measure, so
    the demo and the tests go through the real builtin-provider path."""
    from .backends.simulation import emit_traffic

    targets = {t.environment_id: t for t in DeploymentTarget.objects.filter(
        environment_id__in={d.environment_id for d in deployments}, backend="simulation")}
    for dep in deployments:
        if dep.environment_id in targets:
            emit_traffic(dep, targets[dep.environment_id], now)


def prune(now=None):
    """Drop evaluations older than the retention whose deployment's watch ended more than that long ago."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.METRICS_RETENTION_DAYS)
    stale = TriggerEvaluation.objects.filter(at__lt=cutoff).filter(
        Q(deployment__finished_at__lt=cutoff - dt.timedelta(days=7)) | Q(deployment__finished_at__isnull=True,
                                                                          at__lt=cutoff - dt.timedelta(days=30)))
    deleted, _ = stale.delete()
    return deleted
