"""The scheduled watch: every tick (beat, ``MONITORING_TICK_SECONDS``) judges every enabled trigger of every
watched deployment — running, or succeeded less than its environment's bake time ago — and acts.

One tick asks each environment's provider once for all its deployments and triggers. Deciding is done per
deployment under its row lock, on the triggers as they are then (their ``last_fired_at``): two ticks at once
(two beats, or a tick and an analysis step) never fire a trigger twice, and a deployment already rolling
back is left alone. Actions go through the existing services: ``rollback`` starts the engine's automatic
rollback (for a running deployment) or a post-success rollback (in its bake time), ``alert`` e-mails the
people who may deploy there and audits it, ``scale_up`` asks the backend to scale. Then the registered watch
participants take their turn (``hooks.watch_participants``: the flags app's guarded ramps).
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

from .. import notifications
from ..models import (
    Deployment,
    DeploymentStatus,
    DeploymentTarget,
    RollbackTrigger,
    TriggerAction,
    TriggerEvaluation,
)
from . import hooks, locks, triggers

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
    for action in _decide(by_deployment, results, moment, report, dispatch):
        action()  # backend I/O, after the commit
    for name in hooks.watch_participants.names():
        try:
            report[name] = hooks.watch_participants.get(name)(
                now=now_ts, tick_seconds=settings.MONITORING_TICK_SECONDS, dispatch=dispatch)
        except Exception:
            logger.exception("rollback-trigger watch: participant %s failed", name)
    return report


def _decide(by_deployment, results, moment, report, dispatch):
    """Judge and act for every deployment of the tick in one transaction, holding the deployments' row locks
    (taken in the order of ``locks``); each action runs in a savepoint, so one that fails is
    logged and leaves the others. Returns the I/O to run after the commit."""
    later, rows, fired = [], [], []
    with transaction.atomic():
        locked = locks.lock_deployments(by_deployment)  # environments → releases → deployments, by id
        ids = sorted(locked)
        current = {t.pk: t for t in RollbackTrigger.objects.filter(deployment_id__in=ids)}
        for deployment_id in ids:
            dep = locked[deployment_id]
            if not (dep.status in WATCHED_RUNNING or dep.status == DeploymentStatus.SUCCEEDED):
                continue  # ended, or already rolling back, since the tick began
            later += _decide_one(dep, by_deployment[deployment_id], current, results, moment, report, dispatch,
                                 rows, fired)
        if fired:
            RollbackTrigger.objects.filter(pk__in=fired).update(last_fired_at=moment)
        TriggerEvaluation.objects.bulk_create(rows, batch_size=1000)
    return later


def _decide_one(dep, group, current, results, moment, report, dispatch, rows, fired):
    later, rolled_back = [], False
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
            fired.append(trigger.pk)
            _act(_alert, dep, trigger, verdict)
            report["actions"].append(("alert", dep.pk))
            continue
        if not verdict.fires:
            continue
        fired.append(trigger.pk)
        if trigger.action == TriggerAction.ROLLBACK and not rolled_back:
            rolled_back = _act(_rollback, dep, trigger, verdict, dispatch)
            report["actions"].append(("rollback", dep.pk))
        elif trigger.action == TriggerAction.ALERT:
            _act(_alert, dep, trigger, verdict)
            report["actions"].append(("alert", dep.pk))
        elif trigger.action == TriggerAction.SCALE_UP:
            later.append(lambda dep=dep, trigger=trigger, verdict=verdict: _scale_up(dep, trigger, verdict))
            report["actions"].append(("scale_up", dep.pk))
    return later


def _act(action, dep, *args):
    """Run one action in a savepoint: a failing one is logged and leaves the rest of the tick."""
    try:
        with transaction.atomic():
            action(dep, *args)
        return True
    except Exception:
        logger.exception("rollback-trigger watch: %s for deployment %s failed", action.__name__, dep.pk)
        return False


def _rollback(dep, trigger, verdict, dispatch):
    from . import engine

    reason = f"rollback trigger fired: {verdict.detail}"
    post_success = dep.status == DeploymentStatus.SUCCEEDED
    engine.begin_rollback(dep, by=None, reason=("post-success " if post_success else "automatic ") + reason,
                          operator_action="rollback" if post_success else "abort", dispatch=dispatch)
    audit.record(action="deployment.trigger_fired", obj=dep, reason=verdict.detail,
                 after={"trigger": str(trigger), "action": "rollback", "post_success": post_success,
                        "value": verdict.value})
    notifications.trigger_fired(deployment=dep, trigger=trigger, detail=verdict.detail, action="rollback")


def _alert(dep, trigger, verdict, *_):
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
