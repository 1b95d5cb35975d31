"""Rollback triggers: the set a deployment watches, and the one evaluator the in-plan analysis steps and the
scheduled watch share.

Where triggers come from, in order of precedence: the deployment's ``rollback_triggers`` parameter, the
release's own (on its plan), the environment's defaults. The deployment copies the effective set when it is
created (``copy_effective``), so later edits elsewhere never change what a running deployment watches.
Judging is ``pmrelease.rules``; data comes from the environment's metric provider (``pmrelease.providers``,
filled by the monitoring app), asked once per batch.
"""
import datetime as dt
import math
import time

from pmrelease import errors, providers, rules

from ..metrics import evaluations_recorded
from ..models import RollbackTrigger, TriggerAction, TriggerEvaluation

SPEC_FIELDS = ["metric", "operator", "threshold", "duration", "action", "cooldown", "compare", "compare_mode",
               "no_data", "scale_factor", "enabled"]
DEFAULTS = {"duration": 0, "action": TriggerAction.ROLLBACK, "cooldown": 0, "compare": "", "compare_mode": "ratio",
            "no_data": "hold", "scale_factor": 2.0, "enabled": True}
# The seed's "Automated Rollback Triggers": an environment's defaults for production.
SEED_TRIGGERS = [
    {"metric": "error_rate", "operator": ">", "threshold": 0.1, "duration": 300, "action": "rollback",
     "cooldown": 60},
    {"metric": "response_time_p95", "operator": ">", "threshold": 5, "duration": 180, "action": "alert",
     "cooldown": 30},
]
MAX_TRIGGERS = 20


def spec_of(trigger):
    return {name: getattr(trigger, name) for name in SPEC_FIELDS}


def spec_problems(spec, *, known_metrics=None, label="trigger"):
    """What is wrong with one trigger spec (a dict), naming the field; ``known_metrics`` the provider's."""
    if not isinstance(spec, dict):
        return [f"{label}: an object with metric, operator, threshold (and duration, action, cooldown, compare, "
                "no_data)"]
    unknown = set(spec) - set(SPEC_FIELDS)
    if unknown:
        return [f"{label}.{name}: unknown field (known: {', '.join(SPEC_FIELDS)})" for name in sorted(unknown)]
    full = {**DEFAULTS, **spec}
    found = [f"{label}.{p}" for p in rules.problems(
        metric=full.get("metric"), operator=full.get("operator"), threshold=full.get("threshold"),
        duration=full["duration"], cooldown=full["cooldown"] * 60 if isinstance(full["cooldown"], int | float)
        and not isinstance(full["cooldown"], bool) else full["cooldown"], no_data=full["no_data"],
        compare=full["compare"], compare_mode=full["compare_mode"])]
    if full["action"] not in TriggerAction.values:
        found.append(f"{label}.action: one of {', '.join(TriggerAction.values)}")
    factor = full["scale_factor"]
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not 1 < factor <= 10:
        found.append(f"{label}.scale_factor: a number above 1 and at most 10")
    if not isinstance(full["enabled"], bool):
        found.append(f"{label}.enabled: true or false")
    if known_metrics is not None and isinstance(full.get("metric"), str) and full["metric"] not in known_metrics:
        found.append(f"{label}.metric: {full['metric']!r} is not a metric of this environment's provider (known: "
                     f"{', '.join(known_metrics)})")
    return found


def known_metrics(environment):
    return providers.provider_for(environment).known_metrics()


def validate_specs(specs, environment, *, label="rollback_triggers"):
    """Raise ValidationFailed listing every problem of a list of trigger specs for ``environment``."""
    if not isinstance(specs, list) or len(specs) > MAX_TRIGGERS:
        raise errors.ValidationFailed("invalid rollback triggers", field_errors={
            label: [f"a list of at most {MAX_TRIGGERS} triggers"]})
    known = known_metrics(environment)
    found = [p for i, spec in enumerate(specs) for p in spec_problems(spec, known_metrics=known,
                                                                      label=f"{label}[{i}]")]
    if found:
        raise errors.ValidationFailed("invalid rollback triggers", field_errors={label: found})


def effective_specs(*, environment, release, override=None):
    """The trigger specs a new deployment of ``release`` to ``environment`` watches."""
    if override is not None:
        return [{**DEFAULTS, **spec} for spec in override]
    rows = list(release.rollback_triggers.all()) or list(environment.rollback_triggers.all())
    return [spec_of(row) for row in rows]


def copy_effective(deployment, specs):
    """Store the deployment's own copy of its triggers (inside the creating transaction)."""
    RollbackTrigger.objects.bulk_create([RollbackTrigger(deployment=deployment, position=i, **{**DEFAULTS, **spec})
                                         for i, spec in enumerate(specs)])


def rule_of(trigger, *, window=None):
    duration = trigger.duration if window is None else min(trigger.duration, window)
    return rules.Rule(metric=trigger.metric, operator=trigger.operator, threshold=trigger.threshold,
                      duration=duration, cooldown=trigger.cooldown * 60, no_data=trigger.no_data,
                      compare=trigger.compare, compare_mode=trigger.compare_mode)


def step_for(duration, tick):
    """The resolution to ask for: about six points over the duration, never finer than 1 s."""
    return max(1.0, min(duration / 6 if duration else tick, 60.0))


# --- the evaluator: asking the providers, judging, recording -------------------------------------------------
class Evaluation:
    """One trigger of one deployment being judged: its requests, then its verdict."""

    def __init__(self, deployment, trigger, *, now, tick, window=None):
        self.deployment, self.trigger = deployment, trigger
        self.rule = rule_of(trigger, window=window)
        self.now = now
        self.step = step_for(self.rule.duration, tick)
        span = self.rule.duration + 2 * self.step
        scope = providers.Scope(deployment.environment.name, (deployment.release.version,))
        self.request = providers.Request(trigger.metric, scope, now - span, now, self.step)
        self.baseline = None
        if trigger.compare == "stable" and deployment.previous_version:
            self.baseline = providers.Request(
                trigger.metric, providers.Scope(deployment.environment.name, (deployment.previous_version,)),
                now - span, now, self.step)
        self.verdict = None
        self.baseline_value = None

    def requests(self):
        return [self.request] + ([self.baseline] if self.baseline else [])

    def judge(self, results, *, last_fired_at=None):
        main = results.get(self.request)
        if main is None or main.error:
            self.verdict = rules.Verdict(rules.ERROR, detail=(main.error if main else "the provider gave no answer"))
            return self.verdict
        step = max(main.step or self.step, self.step)
        baseline = None
        if self.trigger.compare == "stable":
            if self.baseline is None:
                baseline = []  # no stable version to compare with: no data
            else:
                base = results.get(self.baseline)
                if base is None or base.error:
                    self.verdict = rules.Verdict(rules.ERROR, detail=base.error if base else "no baseline answer")
                    return self.verdict
                baseline = base.for_version(self.deployment.previous_version)
                self.baseline_value = baseline[-1][1] if baseline else None
        fired = last_fired_at.timestamp() if last_fired_at else None
        self.verdict = rules.judge(self.rule, main.for_version(self.deployment.release.version), now=self.now,
                                   step=step, last_fired_at=fired, baseline=baseline)
        return self.verdict

    def record(self, source):
        return TriggerEvaluation(deployment=self.deployment, trigger=self.trigger, decision=self.verdict.decision,
                                 value=self.verdict.value, baseline=self.baseline_value, source=source,
                                 detail=self.verdict.detail[:500],
                                 at=dt.datetime.fromtimestamp(self.now, tz=dt.UTC))


def fetch(evaluations):
    """Ask each environment's provider once for every request of ``evaluations``: {request: Result}."""
    return providers.fetch_all((e.deployment.environment, r) for e in evaluations for r in e.requests())


def evaluate(deployment, *, now=None, window=None, tick=30.0, source="analysis"):
    """Judge every enabled trigger of one deployment now (an analysis step): [(trigger, verdict)], recorded.
    Firing sets the trigger's ``last_fired_at`` (its cooldown starts)."""
    now = math.floor((now or time.time()) * 1000) / 1000
    evaluations = [Evaluation(deployment, t, now=now, tick=tick, window=window)
                   for t in deployment.triggers.filter(enabled=True)]
    results = fetch(evaluations)
    for evaluation in evaluations:
        evaluation.judge(results, last_fired_at=evaluation.trigger.last_fired_at)
        if evaluation.verdict.fires:
            RollbackTrigger.objects.filter(pk=evaluation.trigger.pk).update(
                last_fired_at=dt.datetime.fromtimestamp(now, tz=dt.UTC))
    rows = TriggerEvaluation.objects.bulk_create([e.record(source) for e in evaluations])
    evaluations_recorded(rows, source)
    return [(e.trigger, e.verdict) for e in evaluations]


# --- what the deployment page shows ----------------------------------------------------------------------
def charts(deployment, *, now=None, per_trigger=500):
    """[(trigger, svg, evaluations count)]: each trigger's evaluations over the deployment and its bake time."""
    from django.utils import timezone

    from ..models import DeploymentStatus, StepStatus
    from . import charts as svg

    now = now or timezone.now()
    start = deployment.started_at or deployment.created_at
    finalize = deployment.steps.filter(kind="finalize", status=StepStatus.SUCCEEDED).first()
    succeeded_at = finalize.finished_at if finalize else None
    bake_end = succeeded_at + dt.timedelta(seconds=deployment.environment.bake_seconds) if succeeded_at else None
    watching = deployment.status in watch_states() or (deployment.status == DeploymentStatus.SUCCEEDED
                                                       and bake_end is not None and bake_end > now)
    result = []
    for trigger in deployment.triggers.all():
        rows = list(TriggerEvaluation.objects.filter(deployment=deployment, trigger=trigger)
                    .order_by("-at").values_list("at", "value", "decision")[:per_trigger])[::-1]
        if watching:
            end = max(now, bake_end or now)
        else:
            last = max([at for at, _, _ in rows[-1:]] + [deployment.finished_at or start])
            end = last + max((last - start) * 0.05, dt.timedelta(seconds=5))
        fired = [at for at, _, decision in rows if decision == "fired"]
        result.append((trigger, svg.trigger_chart(
            title=str(trigger), threshold=trigger.threshold, operator=trigger.operator, points=rows, start=start,
            end=end, finished=succeeded_at, bake_end=min(bake_end, end) if bake_end else None, fired=fired),
            len(rows)))
    return result


def watch_states():
    from ..models import DeploymentStatus

    return (DeploymentStatus.RUNNING, DeploymentStatus.PAUSED, DeploymentStatus.AWAITING_APPROVAL)
