"""Reads for the portal's own observability: the DORA history of each environment (deployments, incidents and
the change requests covering them) handed to the pure arithmetic of ``monitoring.dora``."""
import datetime as dt
from types import SimpleNamespace

from django.db.models import F, Min, Q
from django.utils import timezone

from pmrelease.registry import Hook
from releases import access
from releases.models import Deployment, DeploymentStatus, DeploymentStep, StepPhase

from . import dora
from .statuspage.models import Incident

# The changes app (above this one) provides it: change_submissions(deployments) -> {deployment id: [submitted
# at, …]} of the change requests covering each deployment (objects with pk, release_id, environment_id) in its
# environment. Without it, lead time starts at
# the release's creation.
change_submissions = Hook("dora_change_submissions", "the changes app: when the change requests covering "
                          "deployments were submitted")

MAX_PERIODS = 52


def dora_environments(user, names=None):
    """The active environments ``user`` may see (``names``: only those), in display order."""
    queryset = access.visible_environments(user).filter(is_active=True).order_by("position", "name")
    return list(queryset.filter(name__in=names) if names else queryset)


def _deployments(environment, since):
    """The environment's deployments since ``since`` as DORA records: plain values, not model instances (the
    FSM mixin's per-instance work is most of the time otherwise)."""
    rows = [SimpleNamespace(pk=row["id"], **row) for row in
            Deployment.objects.filter(environment=environment, started_at__gte=since).order_by("started_at", "id")
            .values("id", "started_at", "status", "finished_at", "rolled_back_automatically", "release_id",
                    "environment_id", release_created_at=F("release__created_at"))]
    rolled_back = [d.pk for d in rows if d.status == DeploymentStatus.ROLLED_BACK and d.rolled_back_automatically]
    rollback_started = dict(DeploymentStep.objects.filter(deployment_id__in=rolled_back, phase=StepPhase.ROLLBACK)
                            .values("deployment_id").annotate(first=Min("started_at"))
                            .values_list("deployment_id", "first")) if rolled_back else {}
    submissions = change_submissions(rows) if change_submissions.provided and rows else {}
    records = []
    for d in rows:
        succeeded_at = d.finished_at if d.status == DeploymentStatus.SUCCEEDED else None
        change_start, source = d.release_created_at, "release"
        earliest = min((at for at in submissions.get(d.pk, []) if succeeded_at is None or at <= succeeded_at),
                       default=None)
        if earliest is not None:
            change_start, source = earliest, "change"
        records.append(dora.Deployment(
            id=d.pk, started_at=d.started_at, status=d.status, succeeded_at=succeeded_at,
            change_started_at=change_start, change_source=source,
            automatic_rollback=d.rolled_back_automatically and d.status == DeploymentStatus.ROLLED_BACK,
            rollback_started_at=rollback_started.get(d.pk),
            rollback_finished_at=d.finished_at if d.status == DeploymentStatus.ROLLED_BACK else None))
    return records


def _incidents(environment, since):
    """Incidents opened for the environment (by the engine, or on a component of the environment)."""
    rows = (Incident.objects.filter(created_at__gte=since)
            .filter(Q(environment=environment) | Q(environment__isnull=True, components__environments=environment)
                    | Q(deployment__environment=environment))
            .distinct().order_by("created_at", "id"))
    return [dora.Incident(id=i.pk, created_at=i.created_at, resolved_at=i.resolved_at,
                          deployment_id=i.deployment_id) for i in rows]


def dora_report(*, user, period="month", count=6, environments=None, now=None):
    """``{"period", "count", "generated_at", "tiers", "environments": [{"environment", "production", "periods":
    [keys…]}]}`` for the environments ``user`` may see (``environments``: names to keep)."""
    now = now or timezone.now()
    spans = dora.periods(period, now, count)
    since = spans[0].start
    result = []
    for environment in dora_environments(user, environments):
        history = _deployments(environment, since - dt.timedelta(days=1))
        incidents = _incidents(environment, since)
        keys = [dora.keys(span, history, incidents, now) for span in spans]
        result.append({"environment": environment.name, "display_name": environment.display_name,
                       "production": environment.is_production, "keys": keys})
    return {"period": period, "count": count, "generated_at": now, "environments": result}


def dora_report_dict(report):
    return {"period": report["period"], "count": report["count"], "generated_at": report["generated_at"].isoformat(),
            "tiers": {metric: [{"tier": name, "label": dora.TIER_LABELS[metric][name]} for name in dora.TIER_ORDER]
                      for metric in dora.TIERS},
            "environments": [{"environment": e["environment"], "production": e["production"],
                              "periods": [k.as_dict() for k in e["keys"]]} for e in report["environments"]]}

