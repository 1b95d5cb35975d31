"""The deployment engine: executes a deployment's persisted plan one step at a time.

Every call of ``advance`` runs at most one step, in three parts:

1. *claim* (short transaction, row lock on the deployment): pick the current step, mark it running with a
   short lease and the next lease generation, and count the attempt (a takeover from a lost worker counts
   as a worker loss instead: the worker's fault, not the step's);
2. *execute* (no transaction): the step's I/O through the backend, health checks, flags, gates, while a
   heartbeat renews the lease (releases/deploy/leases.py) and each backend effect checks the fence;
3. *complete* (short transaction): if the lease generation is still this worker's, record the outcome and
   log, move on (or wait, or fail and roll back), and dispatch the next call on commit; otherwise discard it.

All state lives in the database, so a worker killed at any moment loses nothing: a step whose worker
vanished stops being renewed, its lease runs out within ``DEPLOY_LEASE_SECONDS``, and the watchdog (or a
redelivered task) claims it again and re-executes it. Backend operations are declarative ("set the image
to X", "send 10% to the canary"), so a re-executed step has no duplicate effect; a step completed and
committed is never re-run; a worker that was only slow finds its generation gone and applies nothing.
"""
import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from pmrelease import audit, errors, rules

from .. import signals
from ..metrics import step_ended
from ..models import (
    ACTIVE_DEPLOYMENT_STATES,
    Deployment,
    DeploymentStatus,
    DeploymentStep,
    DeploymentTarget,
    Environment,
    Release,
    StepPhase,
    StepStatus,
    TriggerAction,
)
from . import gates, hooks, leases, locks, triggers
from .backends import BackendError, StepContext, get_backend
from .healthchecks import run_http_check

logger = logging.getLogger(__name__)

@dataclass
class Outcome:
    status: str  # "succeeded" | "failed" | "wait"
    message: str = ""
    resume_in: float | None = None  # seconds, for "wait"
    wait_for_person: str = ""  # for "wait": what a person must do
    lines: list = field(default_factory=list)
    simulated_ci: list = field(default_factory=list)  # for "wait" on gates: [(gate id, seconds)] to report


def _now():
    return timezone.now()


def dispatch_advance(deployment_id, countdown=None, dispatch=True):
    """Queue the next step of a deployment once the current transaction commits."""
    if not dispatch:
        return
    from ..tasks import advance_deployment

    if countdown:
        transaction.on_commit(lambda: advance_deployment.apply_async((deployment_id,), countdown=countdown))
    else:
        advance_deployment.delay_on_commit(deployment_id)


def _phase_of(deployment):
    if deployment.status == DeploymentStatus.ROLLING_BACK:
        return StepPhase.ROLLBACK
    if deployment.status == DeploymentStatus.AWAITING_APPROVAL and deployment.steps.filter(
            phase=StepPhase.ROLLBACK).exists():
        return StepPhase.ROLLBACK  # a rollback step waits for manual intervention
    return StepPhase.DEPLOY


def current_step(deployment):
    return (deployment.steps.filter(phase=_phase_of(deployment))
            .exclude(status__in=[StepStatus.SUCCEEDED, StepStatus.SKIPPED])
            .exclude(status=StepStatus.FAILED, params__on_failure="continue")
            .order_by("position").first())


# --- the step runner ----------------------------------------------------------------------------------
def advance(deployment_id, *, dispatch=True):
    """Run the current step of a deployment if it is this call's to run; returns what happened."""
    now = _now()
    with transaction.atomic():
        dep = locks.lock_deployment(deployment_id)
        if dep.status not in (DeploymentStatus.RUNNING, DeploymentStatus.ROLLING_BACK):
            return f"nothing to do: deployment is {dep.status}"
        step = current_step(dep)
        if step is None:
            _finish(dep, dispatch=dispatch)
            return "finished"
        if step.status == StepStatus.RUNNING and step.lease_until and step.lease_until > now:
            return "step is held by another worker"
        if step.status == StepStatus.WAITING and step.resume_at and step.resume_at > now:
            return "step is waiting"
        target = DeploymentTarget.objects.filter(environment=dep.environment).first()
        seconds = leases.lease_seconds(target)
        me = leases.holder()
        if step.status == StepStatus.RUNNING:  # its lease ran out: the worker holding it vanished or stalled
            step.worker_losses += 1
            step.log = [*step.log, {"t": now.strftime("%H:%M:%S"), "msg": (
                f"worker {step.lease_holder or '?'} lost (lease {step.lease_generation} ran out); taken over by {me}")}]
            audit.record(action="deployment.step_takeover", obj=dep,
                         before={"step": step.name, "holder": step.lease_holder, "generation": step.lease_generation},
                         after={"holder": me, "generation": step.lease_generation + 1,
                                "worker_losses": step.worker_losses},
                         reason="the worker running this step stopped renewing its lease")
        else:
            step.attempts += 1
        step.status = StepStatus.RUNNING
        step.lease_generation += 1
        step.lease_holder = me
        step.started_at = step.started_at or now
        step.lease_until = now + dt.timedelta(seconds=seconds)
        step.save(update_fields=["status", "attempts", "worker_losses", "lease_generation", "lease_holder", "log",
                                 "started_at", "lease_until"])
        dep.current_step = step.position
        dep.heartbeat_at = now
        dep.save(update_fields=["current_step", "heartbeat_at"])
        generation = step.lease_generation

    with leases.Heartbeat(step.pk, generation, seconds):
        try:
            outcome = execute(dep, step, target, check_lease=leases.fence(step.pk, generation))
        except BackendError as exc:
            outcome = Outcome("failed", str(exc))
        except Exception as exc:  # a bug or an unexpected library error must not leave the step running forever
            logger.exception("deployment %s step %s crashed", dep.pk, step.position)
            outcome = Outcome("failed", f"unexpected error: {exc.__class__.__name__}: {exc}")
    return complete(dep.pk, step.pk, generation, outcome, dispatch=dispatch)


def complete(deployment_id, step_id, generation, outcome, *, dispatch=True):
    """Record the outcome of the step's execution under lease ``generation`` — unless the step was taken over
    since (a newer generation), whose holder's result is the one that counts: then this one is discarded."""
    now = _now()
    with transaction.atomic():
        dep = locks.lock_deployment(deployment_id)
        step = DeploymentStep.objects.select_for_update().get(pk=step_id)
        stamp = now.strftime("%H:%M:%S")
        if step.lease_generation != generation:
            step.log = [*step.log, {"t": stamp, "msg": (
                f"late result of {leases.holder()} (lease {generation}) discarded: the step was taken over "
                f"(lease {step.lease_generation}): {outcome.status} {outcome.message}"[:500])}]
            step.save(update_fields=["log"])
            logger.warning("deployment %s step %s: late result of lease %s discarded (now %s)", deployment_id,
                           step.position, generation, step.lease_generation)
            return "superseded: another worker took the step over"
        if step.status != StepStatus.RUNNING:
            return "superseded: the step is no longer running"
        step.log = [*step.log, *({"t": stamp, "msg": line} for line in outcome.lines)]
        if outcome.message:
            step.log.append({"t": stamp, "msg": outcome.message})
        step.outcome = outcome.message
        step.lease_until = None
        dep.heartbeat_at = now
        dep.save(update_fields=["heartbeat_at"])
        still_ours = dep.status in (DeploymentStatus.RUNNING, DeploymentStatus.ROLLING_BACK) and (
            step.phase == _phase_of(dep))
        if outcome.status == "succeeded":
            step.status = StepStatus.SUCCEEDED
            step.finished_at = now
            step.resume_at = None
            step.save()
            step_ended(step)
            if still_ours:
                dispatch_advance(dep.pk, dispatch=dispatch)
            return "step succeeded"
        if outcome.status == "wait":
            step.status = StepStatus.WAITING
            step.resume_at = now + dt.timedelta(seconds=outcome.resume_in) if outcome.resume_in is not None else None
            step.save()
            if still_ours and outcome.wait_for_person:
                if dep.status == DeploymentStatus.RUNNING:
                    dep.wait_for_person(waiting_for=outcome.wait_for_person, reason=outcome.wait_for_person)
                else:
                    dep.hold_rollback(waiting_for=outcome.wait_for_person, reason=outcome.wait_for_person)
                dep.save()
            elif still_ours and outcome.resume_in is not None:
                dispatch_advance(dep.pk, countdown=max(outcome.resume_in, 0.05), dispatch=dispatch)
            if still_ours:
                for gate_id, seconds in outcome.simulated_ci:
                    _dispatch_simulated_ci(dep.pk, gate_id, seconds, dispatch)
            return "step waits"
        step.status = StepStatus.FAILED
        step.finished_at = now
        step.save()
        step_ended(step)
        if still_ours:
            _on_step_failure(dep, step, outcome.message, dispatch=dispatch)
        return "step failed"


def _dispatch_simulated_ci(deployment_id, gate_id, seconds, dispatch):
    if not dispatch:
        return
    from ..tasks import simulated_ci_report

    transaction.on_commit(lambda: simulated_ci_report.apply_async((deployment_id, gate_id), countdown=seconds))


def _on_step_failure(dep, step, message, *, dispatch):
    if step.phase == StepPhase.ROLLBACK:
        on_failure = step.params.get("on_failure", "stop")
        if on_failure == "continue":
            dispatch_advance(dep.pk, dispatch=dispatch)
        elif on_failure == "manual_intervention":
            dep.hold_rollback(waiting_for=f"manual intervention: rollback step '{step.name}' failed ({message})",
                              reason=message)
            dep.save()
        else:
            dep.fail(reason=f"rollback stopped at step '{step.name}': {message}")
            dep.save()
            settle_release(dep)
            _ended(dep, reason=dep.failure_reason)
            _after_end(dep, dispatch=dispatch)
        return
    reason = f"step '{step.name}' failed: {message}"
    dep.fail(reason=reason)
    dep.save()
    if dep.auto_rollback:
        begin_rollback(dep, by=None, reason=f"automatic rollback: {reason}", dispatch=dispatch)
    else:
        settle_release(dep)
        _ended(dep, reason=reason)
        _after_end(dep, dispatch=dispatch)


def begin_rollback(dep, *, by, reason, operator_action="abort", dispatch=True):
    """Enter rolling_back: the release's rollback plan steps, then restoring the previous version."""
    getattr(dep, operator_action)(by=by, reason=reason)
    dep.failure_reason = dep.failure_reason or reason
    dep.rolled_back_automatically = by is None
    dep.save()
    dep.steps.filter(phase=StepPhase.DEPLOY, status__in=[StepStatus.PENDING, StepStatus.WAITING]).update(
        status=StepStatus.SKIPPED, outcome="not run: the deployment is rolling back", resume_at=None)
    last = dep.steps.order_by("-position").values_list("position", flat=True).first() or 0
    rows = []
    for index, rb in enumerate(dep.release.rollback_steps.order_by("order"), start=1):
        rows.append(DeploymentStep(
            deployment=dep, phase=StepPhase.ROLLBACK, position=last + index, kind="rollback_step",
            name=f"Rollback plan {rb.order}: {rb.description}",
            params={"order": rb.order, "description": rb.description, "command": rb.command,
                    "verification": rb.verification, "timeout": rb.timeout, "on_failure": rb.on_failure}))
    rows.append(DeploymentStep(deployment=dep, phase=StepPhase.ROLLBACK, position=last + len(rows) + 1,
                               kind="restore", name=f"Restore {dep.previous_version or 'the previous state'}",
                               params={}))
    DeploymentStep.objects.bulk_create(rows)
    dispatch_advance(dep.pk, dispatch=dispatch)


def _finish(dep, *, dispatch):
    if dep.status == DeploymentStatus.RUNNING:
        dep.succeed()
        dep.save()
        record_running(dep, restored=False)
    else:
        dep.finish_rollback(reason=dep.failure_reason)
        dep.save()
        record_running(dep, restored=True)
    settle_release(dep)
    _ended(dep, reason=dep.failure_reason)
    _after_end(dep, dispatch=dispatch)


def record_running(dep, *, restored):
    """What the environment runs after ``dep`` ended: its release, or (a rollback) the version restored."""
    version = dep.previous_version if restored else dep.release.version
    release = dep.release if not restored else Release.objects.filter(version=version).first() if version else None
    Environment.objects.filter(pk=dep.environment_id).update(
        current_release=release, current_version=version or "", current_since=dep.finished_at or _now(),
        current_deployment=dep)


def settle_release(dep):
    """The release's status after one of its deployments ended: still deploying while another one runs;
    deployed while any environment runs it; otherwise failed or rolled back, as this deployment ended."""
    release = dep.release
    release.refresh_from_db(fields=["status"])
    if release.deployments.filter(status__in=ACTIVE_DEPLOYMENT_STATES).exists():
        return
    where = f"{dep.environment.name} (deployment #{dep.pk})"
    if Environment.objects.filter(current_release=release).exists():
        if can_proceed(release.complete):
            release.complete(reason=f"deployed: runs in {', '.join(_running_in(release))}")
    elif dep.status == DeploymentStatus.ROLLED_BACK and can_proceed(release.rollback):
        release.rollback(reason=f"rolled back in {where} and runs nowhere now: {dep.failure_reason}")
    elif dep.status == DeploymentStatus.FAILED and can_proceed(release.fail):
        release.fail(reason=f"failed in {where} and runs nowhere now: {dep.failure_reason}")
    else:
        return
    release.save()


def _running_in(release):
    return list(Environment.objects.filter(current_release=release).order_by("position").values_list("name", flat=True))


def _after_end(dep, *, dispatch):
    from .services import start_next_queued

    start_next_queued(dep.environment_id, dispatch=dispatch)


def _ended(dep, *, reason=""):
    """Tell the apps above (status page incidents, change management, notifications) that ``dep`` ended."""
    signals.deployment_finished.send(sender=Deployment, deployment=dep,
                                     automatic_rollback=dep.rolled_back_automatically, reason=reason)


# --- executing one step -------------------------------------------------------------------------------
def execute(dep, step, target, check_lease=None):
    """The I/O of one step; returns an Outcome (raises BackendError on backend failures). ``check_lease`` is
    the fence the backend checks before each effect."""
    ctx = StepContext(deployment_id=dep.pk, environment=dep.environment.name, version=dep.release.version,
                      previous_version=dep.previous_version, strategy=dep.strategy, step=step.kind,
                      params=dict(step.params))
    if check_lease is not None:
        ctx.check_lease = check_lease
    if target is None:
        return Outcome("failed", f"{dep.environment.name} has no deployment target configured")
    try:
        backend = get_backend(dep.backend, target=target, overrides=(dep.parameters or {}).get("simulate"))
    except BackendError as exc:
        return Outcome("failed", str(exc))
    handler = _HANDLERS.get(step.kind)
    if handler is None:
        return Outcome("failed", f"unknown step kind '{step.kind}'")
    try:
        outcome = handler(dep, step, backend, ctx)
    except BackendError as exc:
        outcome = Outcome("failed", str(exc))
    outcome.lines = ctx.lines + outcome.lines
    return outcome


def _op(method):
    def run(dep, step, backend, ctx):
        method(backend, ctx)
        return Outcome("succeeded", "done")
    return run


def _deploy(dep, step, backend, ctx):
    backend.deploy(ctx, step.params.get("mode", "rolling"))
    return Outcome("succeeded", f"{ctx.version} deployed")


def _canary(dep, step, backend, ctx):
    backend.canary(ctx, step.params["weight"])
    return Outcome("succeeded", f"canary at {step.params['weight']:g}%")


def _timed(step, seconds, then):
    """Wait ``seconds`` from the first attempt, then run ``then``."""
    if seconds and step.resume_at is None:
        return Outcome("wait", f"waiting {seconds:g} s", resume_in=seconds)
    if step.resume_at and step.resume_at > _now():
        return Outcome("wait", "still waiting", resume_in=(step.resume_at - _now()).total_seconds())
    return then()


def _scale_down(dep, step, backend, ctx):
    def go():
        backend.scale_down(ctx)
        return Outcome("succeeded", "old colour scaled down")
    return _timed(step, step.params.get("delay", 0), go)


def _pause(dep, step, backend, ctx):
    duration = step.params.get("duration")
    if duration is None:
        return Outcome("wait", "waiting for a person to promote", wait_for_person=f"promotion: {step.name}")
    return _timed(step, duration, lambda: Outcome("succeeded", f"paused {duration:g} s"))


def _analysis(dep, step, backend, ctx):
    """Judge the deployment's rollback triggers over the pause before this step (the same evaluator as the
    scheduled watch): a fired rollback trigger fails the step (and the deployment rolls back); a provider
    error or missing baseline is never a pass — the deployment waits for a person (promote or abort)."""
    if not dep.triggers.filter(enabled=True).exists():
        return Outcome("succeeded", "no rollback triggers for this deployment: analysis relies on the health checks")
    backend.observe(ctx, dep)
    verdicts = triggers.evaluate(dep, window=step.params.get("window"), source="analysis")
    for trigger, verdict in verdicts:
        ctx.log(f"{trigger}: {verdict.decision}: {verdict.detail}")
    fired = [(t, v) for t, v in verdicts if v.fires]
    for trigger, verdict in fired:
        if trigger.action == TriggerAction.ALERT:
            from ..tasks import send_trigger_alert

            send_trigger_alert.delay(dep.pk, trigger.pk, verdict.detail)
        elif trigger.action == TriggerAction.SCALE_UP:
            ctx.log(scale(dep, trigger.scale_factor))
    rollback = [f"{t}: {v.detail}" for t, v in fired if t.action == TriggerAction.ROLLBACK]
    if rollback:
        return Outcome("failed", "rollback trigger fired: " + "; ".join(rollback))
    errored = [f"{t}: {v.detail}" for t, v in verdicts if v.decision == rules.ERROR]
    if errored:
        return Outcome("wait", "analysis inconclusive: " + "; ".join(errored),
                       wait_for_person="a person to promote or abort: the analysis was inconclusive ("
                       + "; ".join(errored)[:150] + ")")
    return Outcome("succeeded", "rollback triggers within thresholds ("
                   + ", ".join(f"{v.decision}" for _, v in verdicts) + ")")


def scale(dep, factor):
    """A rollback trigger's scale_up through the deployment's backend: what was done, or why not."""
    target = DeploymentTarget.objects.filter(environment=dep.environment).first()
    ctx = StepContext(deployment_id=dep.pk, environment=dep.environment.name, version=dep.release.version,
                      previous_version=dep.previous_version, strategy=dep.strategy, step="scale", params={})
    try:
        backend = get_backend(dep.backend, target=target, overrides=(dep.parameters or {}).get("simulate"))
        return backend.scale(ctx, factor)
    except BackendError as exc:
        return f"could not scale: {exc}"


def _health(dep, step, backend, ctx):
    """The backend's own checks (the simulator's, a script target's health command) and the configured HTTP
    checks (the environment's, and the deployment's ``health_checks`` parameter), each saying which it is."""
    results = [(f"{name} ({backend.name} backend's own)", ok, detail) for name, ok, detail in backend.health(ctx) or []]
    configured = [{"name": c.name, "url": c.url, "expected_status": c.expected_status, "timeout": c.timeout,
                   "retries": c.retries, "interval": c.interval}
                  for c in dep.environment.health_checks.filter(enabled=True)]
    configured += [{"name": c.get("name") or c["url"], **c} for c in (dep.parameters or {}).get("health_checks", [])]
    for check in configured:
        ok, detail = run_http_check(url=check["url"], expected_status=check.get("expected_status", 200),
                                    timeout=check.get("timeout", 5.0), retries=check.get("retries", 3),
                                    interval=check.get("interval", 2.0))
        results.append((f"{check['name']} (configured)", ok, detail))
    if not results:
        return Outcome("succeeded", f"no health checks: none configured for {dep.environment.name}, and the "
                                    f"{backend.name} backend has none of its own")
    for name, ok, detail in results:
        ctx.log(f"{'✓' if ok else '✗'} {name}: {detail}")
    failed = [f"{name}: {detail}" for name, ok, detail in results if not ok]
    if failed:
        return Outcome("failed", "health check failed: " + "; ".join(failed))
    own = len(results) - len(configured)
    return Outcome("succeeded", f"{len(results)} health check(s) passed ({own} of the {backend.name} backend's own, "
                                f"{len(configured)} configured)")


def _ramp_flag(dep, step, backend, ctx):
    try:
        hooks.set_flag_rollout(environment=dep.environment, key=step.params["flag"],
                               percentage=step.params["percentage"],
                               reason=f"deployment #{dep.pk} of {dep.release.version}")
    except errors.DomainError as exc:
        return Outcome("failed", f"flag {step.params['flag']}: {exc.message}")
    return Outcome("succeeded", f"flag {step.params['flag']} at {step.params['percentage']:g}%")


def _gates(dep, step, backend, ctx):
    now = _now()
    verdict = gates.evaluate(dep, started=step.started_at or now, now=now)
    for line in verdict.lines:
        ctx.log(line)
    if verdict.blocking:
        return Outcome("failed", "blocking gate failed: " + ", ".join(verdict.blocking))
    if verdict.waiting:
        names = ", ".join(g.name for g, _ in verdict.waiting)
        outcome = Outcome("wait", f"waiting for results: {names}", resume_in=verdict.poll_in(now))
        ci = backend.simulated_ci()
        if ci is not None:
            outcome.simulated_ci = [(g.pk, ci["after_seconds"]) for g, _ in verdict.waiting]
            ctx.log(f"simulated CI ({backend.name} backend): results for {names} in {ci['after_seconds']:g} s")
        return outcome
    if verdict.warnings:
        warned = ", ".join(verdict.warnings)
        return Outcome("wait", "gate failed with on-failure 'warn': " + warned,
                       wait_for_person="an authorised override (with a reason) of " + warned)
    return Outcome("succeeded", "all gates passed")


def _finalize(dep, step, backend, ctx):
    return Outcome("succeeded", f"{dep.environment.name} now runs {dep.release.version}")


def _rollback_step(dep, step, backend, ctx):
    ok, output = backend.run_rollback_step(ctx, step.params)
    return Outcome("succeeded" if ok else "failed", output)


def _restore(dep, step, backend, ctx):
    backend.restore(ctx)
    return Outcome("succeeded", f"restored {dep.previous_version or 'the previous state'}")


_HANDLERS = {
    "deploy": _deploy,
    "canary": _canary,
    "promote_full": _op(lambda b, ctx: b.promote_full(ctx)),
    "deploy_idle": _op(lambda b, ctx: b.deploy_idle(ctx)),
    "switch_traffic": _op(lambda b, ctx: b.switch_traffic(ctx)),
    "scale_down": _scale_down,
    "pause": _pause,
    "analysis": _analysis,
    "health_check": _health,
    "ramp_flag": _ramp_flag,
    "gates": _gates,
    "finalize": _finalize,
    "rollback_step": _rollback_step,
    "restore": _restore,
}


# --- keeping deployments moving -----------------------------------------------------------------------
def watchdog(*, stale_after=None, max_worker_losses=None, dispatch=True):
    """Hand steps whose worker vanished (lease not renewed) to another worker, fail a step that lost its worker
    ``max_worker_losses`` times (settings.DEPLOY_MAX_WORKER_LOSSES), start queued deployments, wake due waits.

    Returns {"resumed": [...], "failed": [...], "started": [...]} of deployment ids.
    """
    from .services import start_next_queued

    now = _now()
    report = {"resumed": [], "failed": [], "started": []}
    active = Deployment.objects.filter(status__in=[DeploymentStatus.RUNNING, DeploymentStatus.ROLLING_BACK])
    for dep in active:
        step = current_step(dep)
        if step is None:
            report["resumed"].append(dep.pk)
            _dispatch_now(dep.pk, dispatch)
            continue
        expired = step.status == StepStatus.RUNNING and (step.lease_until is None or step.lease_until <= now)
        due = step.status == StepStatus.WAITING and step.resume_at is not None and step.resume_at <= now
        fresh = step.status == StepStatus.PENDING and (dep.heartbeat_at is None or (
            now - dep.heartbeat_at).total_seconds() > (stale_after or 60))
        if not (expired or due or fresh):
            continue
        if expired:
            limit = settings.DEPLOY_MAX_WORKER_LOSSES if max_worker_losses is None else max_worker_losses
            with transaction.atomic():
                locked = locks.lock_deployment(dep.pk)
                step = DeploymentStep.objects.select_for_update().get(pk=step.pk)
                if step.status != StepStatus.RUNNING or (step.lease_until and step.lease_until > now):
                    continue  # claimed again meanwhile
                if locked.heartbeat_at and step.lease_until and step.lease_until < locked.heartbeat_at and (
                        now - locked.heartbeat_at).total_seconds() < max(stale_after or 0, 30):
                    continue  # handed over already, not picked up yet: no second message and audit row each tick
                if step.worker_losses + 1 >= limit:
                    reason = (f"step '{step.name}' lost its worker {step.worker_losses + 1} times; failing it so it "
                              "does not run forever (it may be what stops them)")
                    DeploymentStep.objects.filter(pk=step.pk).update(status=StepStatus.FAILED, finished_at=now,
                                                                     outcome=reason, lease_until=None)
                    step.refresh_from_db()
                    _on_step_failure(locked, step, reason, dispatch=dispatch)
                    report["failed"].append(dep.pk)
                    continue
                locked.watchdog_restarts += 1
                locked.heartbeat_at = now
                locked.save(update_fields=["watchdog_restarts", "heartbeat_at"])
                audit.record(action="deployment.watchdog_resume", obj=locked,
                             after={"step": step.name, "holder": step.lease_holder,
                                    "generation": step.lease_generation, "restarts": locked.watchdog_restarts},
                             reason="the worker running this step stopped renewing its lease (vanished or stalled)")
        report["resumed"].append(dep.pk)
        _dispatch_now(dep.pk, dispatch)
    for env_id in (Deployment.objects.filter(status=DeploymentStatus.PENDING)
                   .values_list("environment_id", flat=True).distinct()):
        started = start_next_queued(env_id, dispatch=dispatch)
        if started:
            report["started"].append(started)
    return report


def _dispatch_now(deployment_id, dispatch):
    if dispatch:
        from ..tasks import advance_deployment

        advance_deployment.delay(deployment_id)


def run_inline(deployment_id, *, max_steps=500):
    """Drive a deployment to its end in this process, waits included (demo data and benchmarks only)."""
    for _ in range(max_steps):
        dep = Deployment.objects.get(pk=deployment_id)
        if dep.status not in (DeploymentStatus.RUNNING, DeploymentStatus.ROLLING_BACK):
            return dep
        step = current_step(dep)
        if step is not None and step.status == StepStatus.WAITING and step.resume_at:
            DeploymentStep.objects.filter(pk=step.pk).update(resume_at=_now())  # fast-forward the wait
        advance(deployment_id, dispatch=False)
    return Deployment.objects.get(pk=deployment_id)
