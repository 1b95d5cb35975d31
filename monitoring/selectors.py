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


def _deployments(environments, since):
    """``{environment id: [DORA deployment records]}`` of the environments' deployments since ``since``, read
    together (plain values, not model instances: the FSM mixin's per-instance work is most of the time
    otherwise)."""
    rows = [SimpleNamespace(pk=row["id"], **row) for row in
            Deployment.objects.filter(environment__in=environments, started_at__gte=since)
            .order_by("started_at", "id")
            .values("id", "started_at", "status", "finished_at", "rolled_back_automatically", "release_id",
                    "environment_id", release_created_at=F("release__created_at"))]
    rolled_back = [d.pk for d in rows if d.status == DeploymentStatus.ROLLED_BACK and d.rolled_back_automatically]
    rollback_started = dict(DeploymentStep.objects.filter(deployment_id__in=rolled_back, phase=StepPhase.ROLLBACK)
                            .values("deployment_id").annotate(first=Min("started_at"))
                            .values_list("deployment_id", "first")) if rolled_back else {}
    submissions = change_submissions(rows) if change_submissions.provided and rows else {}
    records = {environment.pk: [] for environment in environments}
    for d in rows:
        succeeded_at = d.finished_at if d.status == DeploymentStatus.SUCCEEDED else None
        change_start, source = d.release_created_at, "release"
        earliest = min((at for at in submissions.get(d.pk, []) if succeeded_at is None or at <= succeeded_at),
                       default=None)
        if earliest is not None:
            change_start, source = earliest, "change"
        records[d.environment_id].append(dora.Deployment(
            id=d.pk, started_at=d.started_at, status=d.status, succeeded_at=succeeded_at,
            change_started_at=change_start, change_source=source,
            automatic_rollback=d.rolled_back_automatically and d.status == DeploymentStatus.ROLLED_BACK,
            rollback_started_at=rollback_started.get(d.pk),
            rollback_finished_at=d.finished_at if d.status == DeploymentStatus.ROLLED_BACK else None))
    return records


def _incidents(environments, since):
    """``{environment id: [DORA incident records]}``: the incidents opened for each environment (by the engine,
    on one of its deployments, or, with no environment of their own, on a component of the environment), read
    together."""
    ids = [environment.pk for environment in environments]
    rows = list(Incident.objects.filter(created_at__gte=since)
                .filter(Q(environment__in=ids) | Q(environment__isnull=True, components__environments__in=ids)
                        | Q(deployment__environment__in=ids))
                .distinct().order_by("created_at", "id")
                .values("id", "created_at", "resolved_at", "deployment_id", "environment_id",
                        deployment_environment_id=F("deployment__environment_id")))
    on_components = {}
    unplaced = [row["id"] for row in rows if row["environment_id"] is None]
    if unplaced:
        for incident_id, environment_id in (Incident.components.through.objects
                                            .filter(incident_id__in=unplaced, component__environments__in=ids)
                                            .values_list("incident_id", "component__environments")):
            on_components.setdefault(incident_id, set()).add(environment_id)
    records = {pk: [] for pk in ids}
    for row in rows:
        where = set(on_components.get(row["id"], ())) if row["environment_id"] is None else {row["environment_id"]}
        where.add(row["deployment_environment_id"])
        incident = dora.Incident(id=row["id"], created_at=row["created_at"], resolved_at=row["resolved_at"],
                                 deployment_id=row["deployment_id"])
        for pk in where & set(ids):
            records[pk].append(incident)
    return records


def dora_report(*, user, period="month", count=6, environments=None, now=None):
    """``{"period", "count", "generated_at", "tiers", "environments": [{"environment", "production", "periods":
    [keys…]}]}`` for the environments ``user`` may see (``environments``: names to keep). The history of every
    environment is read together: the cost does not grow with the number of environments."""
    now = now or timezone.now()
    spans = dora.periods(period, now, count)
    since = spans[0].start
    shown = dora_environments(user, environments)
    histories = _deployments(shown, since - dt.timedelta(days=1))
    incidents = _incidents(shown, since)
    result = []
    for environment in shown:
        keys = [dora.keys(span, histories[environment.pk], incidents[environment.pk], now) for span in spans]
        result.append({"environment": environment.name, "display_name": environment.display_name,
                       "production": environment.is_production, "keys": keys})
    return {"period": period, "count": count, "generated_at": now, "environments": result}


def dora_report_dict(report):
    return {"period": report["period"], "count": report["count"], "generated_at": report["generated_at"].isoformat(),
            "tiers": {metric: [{"tier": name, "label": dora.TIER_LABELS[metric][name]} for name in dora.TIER_ORDER]
                      for metric in dora.TIERS},
            "environments": [{"environment": e["environment"], "production": e["production"],
                              "periods": [k.as_dict() for k in e["keys"]]} for e in report["environments"]]}

