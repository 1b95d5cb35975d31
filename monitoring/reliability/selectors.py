"""SLO status (error budget, burn rates, the SRE workbook's alerts) from the portal's own history, and the
function the alert engine calls for burn-rate notifications (``slo_burn_rate_alerts``)."""
import datetime as dt

from django.utils import timezone

from releases import access
from releases.models import Deployment, DeploymentStatus

from .. import slo as arithmetic
from ..statuspage import uptime
from ..statuspage.selectors import component_intervals
from .models import ServiceLevelObjective, Sli

FINISHED = (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK)


def visible_slos(user):
    return (ServiceLevelObjective.objects.filter(environment__in=access.visible_environments(user))
            .select_related("environment", "component"))


def _longest(slo):
    return max(dt.timedelta(days=slo.window_days), *(a.long for a in arithmetic.ALERTS))


def _uptime_ratio(slo, now, intervals=None):
    """(downtime seconds, covered seconds) of a span, from the component's status history (``intervals``: the
    component's, when fetched with other SLOs')."""
    if intervals is None:
        intervals = component_intervals([slo.component], now, days=_longest(slo).days + 1)[slo.component_id]

    def ratio(start, end):
        covered = uptime.covered_seconds(intervals, start, end)
        return (uptime.downtime_seconds(intervals, start, end), covered) if covered > 0 else None

    return ratio


def _finished(environment_ids, since, now):
    """(environment id, finished at, status) of the deployments of those environments that ended in (since, now]."""
    return list(Deployment.objects.filter(environment_id__in=environment_ids, status__in=FINISHED,
                                          finished_at__gt=since, finished_at__lte=now)
                .values_list("environment_id", "finished_at", "status"))


def _deployment_ratio(slo, now, finished=None):
    """(failed or rolled back, finished) deployments of the environment that ended in a span (``finished``: from
    ``_finished``, when fetched with other SLOs')."""
    since = now - _longest(slo)
    if finished is None:
        finished = _finished([slo.environment_id], since, now)
    ends = [(at, status) for environment_id, at, status in finished
            if environment_id == slo.environment_id and since < at <= now]

    def ratio(start, end):
        inside = [status for at, status in ends if start < at <= end]
        return (sum(1 for s in inside if s != DeploymentStatus.SUCCEEDED), len(inside)) if inside else None

    return ratio


def _evaluate(slo, ratio, now):
    return arithmetic.evaluate(objective_percent=slo.objective, window=dt.timedelta(days=slo.window_days),
                               ratio=ratio, now=now)


def slo_status(slo, now=None):
    """The SLO's ``monitoring.slo.Status`` at ``now``."""
    now = now or timezone.now()
    ratio = (_uptime_ratio if slo.sli == Sli.UPTIME else _deployment_ratio)(slo, now)
    return _evaluate(slo, ratio, now)


def slo_statuses(slos, now=None):
    """``{slo id: Status}`` of many SLOs at ``now`` (a list page's), their history read together: the
    components' status changes once per window length, the environments' finished deployments once."""
    now = now or timezone.now()
    slos = list(slos)
    by_days = {}
    for slo in slos:
        if slo.sli == Sli.UPTIME and slo.component_id is not None:
            by_days.setdefault(_longest(slo).days + 1, {})[slo.component_id] = slo.component
    intervals = {}
    for days, components in by_days.items():
        for component_id, found in component_intervals(list(components.values()), now, days=days).items():
            intervals[(days, component_id)] = found
    counted = [slo for slo in slos if slo.sli == Sli.DEPLOYMENT_SUCCESS]
    finished = _finished({slo.environment_id for slo in counted}, now - max(map(_longest, counted)), now) \
        if counted else []
    result = {}
    for slo in slos:
        if slo.sli == Sli.UPTIME:
            ratio = _uptime_ratio(slo, now, intervals.get((_longest(slo).days + 1, slo.component_id)))
        else:
            ratio = _deployment_ratio(slo, now, finished)
        result[slo.pk] = _evaluate(slo, ratio, now)
    return result


def slo_burn_rate_alerts(now=None):
    """For the alert engine (issue 15's first half): every enabled SLO's firing burn-rate alerts, as
    ``[{"slo", "name", "environment", "component", "severity", "long_window_seconds", "short_window_seconds",
    "threshold", "long_burn_rate", "short_burn_rate", "budget_remaining"}]``. It sends nothing itself; call it
    on the alert engine's schedule and notify per severity (page / ticket) with the engine's cooldown."""
    now = now or timezone.now()
    found = []
    for slo in ServiceLevelObjective.objects.filter(enabled=True).select_related("environment", "component"):
        status = slo_status(slo, now)
        for state in status.firing:
            found.append({"slo": slo.pk, "name": slo.name, "environment": slo.environment.name,
                          "component": slo.component.name if slo.component else None,
                          **state.as_dict(), "budget_remaining": status.as_dict()["budget_remaining"]})
    return found
