"""Guarded flag ramps: a flag's ``monitoring_alerts`` judged while one of its gradual ramps runs, and the ramp
paused or reverted on a sustained breach — the seed's per-flag ``monitoring``, read.

A guard is a rule of the shared arithmetic (``pmrelease.rules``: operator, threshold, sustained ``duration``,
``cooldown``, no-data policy), so a flag's ramp is judged exactly as a deployment's rollback triggers are. The
rollback watch (``releases.deploy.watch``) runs ``tick`` in each of its rounds — the flags app registers it as a
watch participant — so deployments and ramps share one schedule and one evaluator. The series come from the
environment's metric provider, for the flag, at the version the environment runs: builtin samples pushed with
``"flag": "<key>"``; a Prometheus template's ``{flag}`` placeholder is the key.

Watched: running ramps, and completed ones through their environment's bake time (for the guards that revert: a
completed ramp cannot be paused). A guard that fires pauses the ramp where it is (``pause_rollout``) or restores
the flag as it was before the ramp (``revert_rollout``), audited as the system with the measurement. Deciding
happens under the ramps' row locks, in id order, on their status as it then is: two rounds at once act once.
"""
import datetime as dt
import logging
import math

from django.db import transaction
from django.db.models import Max

from pmrelease import audit, providers, rules

from .models import GradualRollout, GuardEvaluation, RampStatus

logger = logging.getLogger(__name__)

PAUSE, REVERT = "pause_rollout", "revert_rollout"
ACTIONS = (PAUSE, REVERT)
FIELDS = ("metric", "operator", "threshold", "duration", "cooldown", "no_data", "action")
DEFAULTS = {"duration": 0, "cooldown": 0, "no_data": "hold", "action": PAUSE}
MAX_GUARDS = 10


def guard_problems(alerts):
    """What is wrong with a flag's monitoring alerts (its guards), naming the index and field (empty: valid)."""
    if not isinstance(alerts, list) or len(alerts) > MAX_GUARDS:
        return [f"monitoring alerts: a list of at most {MAX_GUARDS} guards"]
    found = []
    for index, spec in enumerate(alerts):
        label = f"monitoring alerts[{index}]"
        if not isinstance(spec, dict):
            found.append(f"{label}: an object with metric, operator, threshold (and duration, cooldown, no_data, "
                         "action)")
            continue
        unknown = set(spec) - set(FIELDS)
        if unknown:
            found.append(f"{label}: unknown fields {', '.join(sorted(unknown))} (known: {', '.join(FIELDS)})")
            continue
        full = {**DEFAULTS, **spec}
        cooldown = full["cooldown"]
        found += [f"{label}.{p}" for p in rules.problems(
            metric=full.get("metric"), operator=full.get("operator"), threshold=full.get("threshold"),
            duration=full["duration"], no_data=full["no_data"],
            cooldown=cooldown * 60 if isinstance(cooldown, int | float) and not isinstance(cooldown, bool)
            else cooldown)]
        if full["action"] not in ACTIONS:
            found.append(f"{label}.action: one of {', '.join(ACTIONS)}")
    return found


def rule_of(spec):
    full = {**DEFAULTS, **spec}
    return rules.Rule(metric=full["metric"], operator=full["operator"], threshold=float(full["threshold"]),
                      duration=float(full["duration"]), cooldown=float(full["cooldown"]) * 60,
                      no_data=full["no_data"])


def describe(spec):
    return f"{rule_of(spec).describe()} → {({**DEFAULTS, **spec})['action'].replace('_', ' ')}"


def _guards(ramp):
    """[(index, spec)] of the guards that apply to ``ramp`` as it is."""
    alerts = ramp.state.flag.monitoring_alerts or []
    if not isinstance(alerts, list) or guard_problems(alerts):
        return []  # stored before guards were validated and never fixed: nothing to judge, never a crash
    return [(i, spec) for i, spec in enumerate(alerts)
            if ramp.status == RampStatus.RUNNING or {**DEFAULTS, **spec}["action"] == REVERT]


def watched(now):
    """The ramps to watch at ``now`` (datetime): running, or completed less than their bake time ago, with guards."""
    longest_bake = dt.timedelta(days=7)
    ramps = (GradualRollout.objects.filter(status=RampStatus.RUNNING)
             | GradualRollout.objects.filter(status=RampStatus.COMPLETED, completed_at__gte=now - longest_bake))
    ramps = ramps.select_related("state__flag", "state__environment").order_by("pk")
    return [r for r in ramps if _guards(r) and (
        r.status == RampStatus.RUNNING
        or (now - r.completed_at).total_seconds() <= r.state.environment.bake_seconds)]


class Evaluation:
    """One guard of one ramp being judged: its request, then its verdict."""

    def __init__(self, ramp, index, spec, *, now, tick):
        self.ramp, self.index, self.spec = ramp, index, spec
        self.rule = rule_of(spec)
        self.now = now
        self.step = max(1.0, min(self.rule.duration / 6 if self.rule.duration else tick, 60.0))
        environment = ramp.state.environment
        self.version = environment.current_version or ""
        scope = providers.Scope(environment.name, (self.version,), flag=ramp.state.flag.key)
        span = self.rule.duration + 2 * self.step
        self.request = providers.Request(self.rule.metric, scope, now - span, now, self.step)
        self.verdict = None

    def judge(self, results, last_fired_at):
        answer = results.get(self.request)
        if answer is None or answer.error:
            self.verdict = rules.Verdict(rules.ERROR, detail=answer.error if answer else "the provider gave no answer")
            return self.verdict
        self.verdict = rules.judge(self.rule, answer.for_version(self.version), now=self.now,
                                   step=max(answer.step or self.step, self.step),
                                   last_fired_at=last_fired_at.timestamp() if last_fired_at else None)
        return self.verdict

    def record(self, action=""):
        return GuardEvaluation(ramp_id=self.ramp.pk, guard=self.index, rule=describe(self.spec)[:200],
                               decision=self.verdict.decision, value=self.verdict.value,
                               detail=self.verdict.detail[:500], action=action,
                               at=dt.datetime.fromtimestamp(self.now, tz=dt.UTC))


def tick(*, now, tick_seconds=30.0, dispatch=True):
    """One round over every watched ramp (``now`` in unix seconds). Returns a report: ramps and guards judged,
    decisions, and the actions taken."""
    now = math.floor(now * 1000) / 1000
    moment = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    ramps = watched(moment)
    evaluations = [Evaluation(ramp, index, spec, now=now, tick=tick_seconds)
                   for ramp in ramps for index, spec in _guards(ramp)]
    report = {"ramps": len(ramps), "guards": len(evaluations), "decisions": {}, "actions": []}
    if not evaluations:
        return report
    results = providers.fetch_all((e.ramp.state.environment, e.request) for e in evaluations)
    by_ramp = {}
    for evaluation in evaluations:
        by_ramp.setdefault(evaluation.ramp.pk, []).append(evaluation)
    _decide(by_ramp, results, report)
    return report


def _decide(by_ramp, results, report):
    rows = []
    with transaction.atomic():
        locked = {r.pk: r for r in GradualRollout.objects.select_for_update(of=("self",)).filter(
            pk__in=sorted(by_ramp)).order_by("pk")}
        fired_at = {(r["ramp_id"], r["guard"]): r["last"] for r in GuardEvaluation.objects.filter(
            ramp_id__in=list(locked), decision=rules.FIRED).values("ramp_id", "guard").annotate(last=Max("at"))}
        for pk in sorted(locked):
            current = locked[pk]
            acted = False
            for evaluation in by_ramp[pk]:
                if current.status != evaluation.ramp.status:
                    break  # paused, reverted or completed since the round began: judged next round as it is
                verdict = evaluation.judge(results, fired_at.get((pk, evaluation.index)))
                report["decisions"][verdict.decision] = report["decisions"].get(verdict.decision, 0) + 1
                action = ""
                if verdict.fires and not acted:
                    action = _act(evaluation)
                    acted = bool(action)
                    if action:
                        report["actions"].append((action, pk))
                rows.append(evaluation.record(action))
        GuardEvaluation.objects.bulk_create(rows, batch_size=1000)


def _act(evaluation):
    """Pause or revert the ramp (in a savepoint: one that fails is logged and leaves the round). Returns what it
    did ("paused", "reverted") or ""."""
    from . import services

    ramp, spec, verdict = evaluation.ramp, {**DEFAULTS, **evaluation.spec}, evaluation.verdict
    reason = f"guard fired: {describe(evaluation.spec)}: {verdict.detail}"[:500]
    try:
        with transaction.atomic():
            if spec["action"] == PAUSE:
                services.ramp_pause(ramp=ramp, by=None, reason=reason)
                done = "paused"
            else:
                services.ramp_revert(ramp=ramp, by=None, reason=reason)
                done = "reverted"
            audit.record(action="flag.guard_fired", obj=ramp.state, by=None, reason=verdict.detail[:500],
                         after={"guard": evaluation.index, "rule": describe(evaluation.spec), "value": verdict.value,
                                "action": done, "version": evaluation.version})
        return done
    except Exception:
        logger.exception("flag guard: %s of ramp %s failed", spec["action"], ramp.pk)
        return ""


# --- what the flag's page shows --------------------------------------------------------------------------------
def charts(ramp, *, now=None, per_guard=500):
    """[(rule, svg, evaluations count)]: each guard's evaluations over the ramp (and its bake time)."""
    from django.utils import timezone

    from releases.deploy import charts as svg

    now = now or timezone.now()
    bake = dt.timedelta(seconds=ramp.state.environment.bake_seconds)
    bake_end = ramp.completed_at + bake if ramp.completed_at else None
    result = []
    alerts = ramp.state.flag.monitoring_alerts if isinstance(ramp.state.flag.monitoring_alerts, list) else []
    for index, spec in enumerate(alerts):
        if not isinstance(spec, dict) or guard_problems([spec]):
            continue
        rows = list(ramp.guard_evaluations.filter(guard=index).order_by("-at")
                    .values_list("at", "value", "decision")[:per_guard])[::-1]
        watching = ramp.status == RampStatus.RUNNING or (bake_end is not None and bake_end > now
                                                         and ramp.status == RampStatus.COMPLETED)
        if watching:
            end = max(now, bake_end or now)
        else:
            last = max([at for at, _, _ in rows[-1:]] + [ramp.updated_at])
            end = last + max((last - ramp.created_at) * 0.05, dt.timedelta(seconds=5))
        rule = rule_of(spec)
        result.append((describe(spec), svg.trigger_chart(
            title=describe(spec), threshold=rule.threshold, operator=rule.operator, points=rows,
            start=ramp.created_at, end=end, finished=ramp.completed_at,
            bake_end=min(bake_end, end) if bake_end else None,
            fired=[at for at, _, decision in rows if decision == rules.FIRED]), len(rows)))
    return result
