"""Services for deployments: start, operator actions, gate results and overrides."""
from django.contrib.auth import get_user_model
from django.db import transaction
from django_fsm import can_proceed

from pmrelease import audit, errors, leaks
from pmrelease.roles import Capability

from .. import access, configuration, notifications, signals
from ..models import (
    ACTIVE_DEPLOYMENT_STATES,
    ConcurrencyPolicy,
    Deployment,
    DeploymentStatus,
    DeploymentStep,
    DeploymentTarget,
    Environment,
    GateOnFailure,
    GateResult,
    GateResultStatus,
    ReleaseStatus,
    RollbackTrigger,
    StepPhase,
    StepStatus,
    TestingGate,
)
from . import engine, gates, hooks, junit, locks, promotion, strategies, triggers
from .backends import BackendError, get_backend

DEPLOYABLE = (ReleaseStatus.APPROVED, ReleaseStatus.DEPLOYING, ReleaseStatus.DEPLOYED)


# --- promotion path -----------------------------------------------------------------------------------
def promotion_refusals(release, environment):
    """Why ``release`` may not go to ``environment`` now (empty: it may)."""
    envs = {}
    all_envs = list(Environment.objects.all())
    promotes_from = {e.promotes_to_id: e.name for e in all_envs if e.promotes_to_id}
    by_id = {e.pk: e for e in all_envs}
    for e in all_envs:
        envs[e.name] = promotion.Env(name=e.name, tier=e.tier, promotes_from=promotes_from.get(e.pk),
                                     attached_to=by_id[e.attached_to_id].name if e.attached_to_id else None,
                                     attachment=e.attachment)
    successes = {}
    for dep in (release.deployments.filter(status=DeploymentStatus.SUCCEEDED).select_related("environment")
                .order_by("id")):
        successes[dep.environment.name] = promotion.Success(dep.environment.name, tuple(gates.failed_required(dep)))
    targets = set(release.environments.values_list("name", flat=True))
    return promotion.refusals(release_type=release.type, target=environment.name, envs=envs,
                              successes=successes, targets=targets)


def _previous_version(environment, release):
    last = (Deployment.objects.filter(environment=environment, status=DeploymentStatus.SUCCEEDED)
            .exclude(release=release).select_related("release").order_by("-finished_at", "-id").first())
    return last.release.version if last else ""


# --- creating and starting ----------------------------------------------------------------------------
def deployment_create(*, release, environment, by, strategy=None, parameters=None, auto_rollback=True,
                      dispatch=True):
    """Plan a deployment of ``release`` to ``environment``; it starts at once or waits its turn."""
    access.require(by, [environment], Capability.DEPLOY)
    target = DeploymentTarget.objects.filter(environment=environment).first()
    if target is None:
        raise errors.ValidationFailed(f"{environment.name} has no deployment target: configure one in the admin",
                                      field_errors={"environment": [f"{environment.name} has no deployment target"]})
    strategy = strategy or target.default_strategy
    params = {**(target.default_parameters or {}), **(parameters or {})}
    try:
        params = strategies.normalise(strategy, params)
    except strategies.PlanError as exc:
        field_errors = {"strategy": [exc.errors["strategy"]]} if "strategy" in exc.errors else {
            "parameters": [f"{k}: {v}" for k, v in exc.errors.items()]}
        raise errors.ValidationFailed("invalid deployment strategy parameters", field_errors=field_errors) from exc
    override = params.pop("rollback_triggers", None)
    if override is not None:
        triggers.validate_specs(override, environment, label="parameters.rollback_triggers")
    with transaction.atomic():
        locks.lock_environment_and_release(environment.pk, release.pk)  # serialises starts per environment
        locked = type(release).objects.get(pk=release.pk)
        specs = triggers.effective_specs(environment=environment, release=locked, override=override)
        if override is None and specs:
            triggers.validate_specs(specs, environment, label="rollback_triggers (of the release or environment)")
        if locked.status not in DEPLOYABLE:
            hint = (": redeploy it first (with a reason) if its approvals still hold"
                    if can_proceed(locked.redeploy) else "")
            raise errors.TransitionNotAllowed(f"release {locked.version} is {locked.status}: only approved "
                                              f"(or deploying/deployed) releases can be deployed{hint}")
        refusals = promotion_refusals(locked, environment)
        refusals += hooks.deployment_gate(release=locked, environment=environment)[0]
        config_diff = configuration.promotion_diff(locked, environment)
        refusals += configuration.deployment_refusals(locked, environment, config_diff)
        if refusals:
            raise errors.TransitionNotAllowed(f"{locked.version} may not go to {environment.name} yet",
                                              reasons=refusals)
        busy = Deployment.objects.filter(environment=environment, status__in=ACTIVE_DEPLOYMENT_STATES).first()
        if busy and target.concurrency == ConcurrencyPolicy.REFUSE:
            raise errors.TransitionNotAllowed(
                f"{environment.name} is busy with deployment #{busy.pk} ({busy.release.version}, {busy.status}); "
                "this environment refuses a second deployment until it ends")
        dep = Deployment.objects.create(
            release=locked, environment=environment, strategy=strategy, parameters=params, backend=target.backend,
            requested_by=by, auto_rollback=auto_rollback, previous_version=_previous_version(environment, locked),
            waiting_for=(f"its turn: deployment #{busy.pk} ({busy.release.version}) runs in {environment.name}; "
                         "this one starts when it ends") if busy else "")
        triggers.copy_effective(dep, specs)
        configuration.record_deployment_diff(dep, config_diff)
        has_gates = environment.testing_gates.exists()
        DeploymentStep.objects.bulk_create([
            DeploymentStep(deployment=dep, position=i, kind=s["kind"], name=s["name"], params=s["params"])
            for i, s in enumerate(strategies.plan(strategy, params, has_gates=has_gates), start=1)])
        audit.record(action="deployment.create", obj=dep, by=by,
                     after={"release": locked.version, "environment": environment.name, "strategy": strategy,
                            "parameters": params, "queued_behind": busy.pk if busy else None,
                            "configuration": None if config_diff is None else {
                                "pinned": str(config_diff["pinned"]), "changes": len(config_diff["changes"]),
                                "must_match": [c["path"] for c in config_diff["must_match"]]}})
        if busy is None:
            _start(dep, by=by, dispatch=dispatch)
    dep.refresh_from_db()
    return dep


def _start(dep, *, by, dispatch):
    release = dep.release
    if can_proceed(release.deploy):
        release.deploy(by=by, reason=f"deployment #{dep.pk} to {dep.environment.name} started")
        release.save()
    dep.start(by=by, reason="started")
    dep.save()
    signals.deployment_started.send(sender=Deployment, deployment=dep)
    engine.dispatch_advance(dep.pk, dispatch=dispatch)


def start_next_queued(environment_id, *, dispatch=True):
    """Start the oldest pending deployment of an environment when nothing else runs there."""
    with transaction.atomic():
        locks.lock_environment_and_release(environment_id)
        if Deployment.objects.filter(environment_id=environment_id, status__in=ACTIVE_DEPLOYMENT_STATES).exists():
            return None
        first = (Deployment.objects.filter(environment_id=environment_id, status=DeploymentStatus.PENDING)
                 .order_by("created_at", "id").values_list("pk", flat=True).first())
        if first is None:
            return None
        dep = locks.lock_deployment(first)  # the environment is held already; then its release and itself
        if dep.status != DeploymentStatus.PENDING:
            return None
        refusals = promotion_refusals(dep.release, dep.environment)
        refusals += hooks.deployment_gate(release=dep.release, environment=dep.environment)[0]
        if dep.release.status not in DEPLOYABLE or refusals:
            why = "; ".join(refusals) or f"release is {dep.release.status}"
            dep.cancel(reason=f"no longer allowed when its turn came: {why}")
            dep.save()
            return None
        dep.previous_version = _previous_version(dep.environment, dep.release)
        dep.waiting_for = ""
        dep.save(update_fields=["previous_version", "waiting_for"])
        _start(dep, by=None, dispatch=dispatch)
        return dep.pk


# --- operator actions ----------------------------------------------------------------------------------
# The operator actions and what text each needs: "reason" (required) or "" (none).
ACTION_TEXT = {"promote": "", "pause": "", "resume": "", "abort": "reason", "rollback": "reason", "retry": "",
               "cancel": "reason"}


def _locked(deployment):
    return locks.lock_deployment(deployment.pk)


def deployment_action(*, deployment, name, by, reason="", dispatch=True):
    """Run an operator action (promote, pause, resume, abort, rollback, retry, cancel)."""
    if name not in ACTION_TEXT:
        raise errors.ValidationFailed(f"unknown deployment action '{name}'")
    access.require(by, [deployment.environment], Capability.DEPLOY)
    if ACTION_TEXT[name] == "reason" and not (reason or "").strip():
        raise errors.ValidationFailed(f"'{name}' needs a reason", field_errors={"reason": ["This field is required."]})
    with transaction.atomic():
        dep = _locked(deployment)
        if not _allowed(dep, name):
            raise errors.TransitionNotAllowed(f"deployment #{dep.pk} is {dep.status}: '{name}' is not allowed now")
        if name == "promote":
            _promote(dep, by, reason, dispatch)
        elif name == "pause":
            dep.pause(by=by, reason=reason, waiting_for=f"resume by an operator ({by.username} paused it)")
            dep.save()
        elif name == "resume":
            dep.resume(by=by, reason=reason)
            dep.save()
            engine.dispatch_advance(dep.pk, dispatch=dispatch)
        elif name in ("abort", "rollback"):
            engine.begin_rollback(dep, by=by, reason=f"{name} by {by.username}: {reason}", operator_action=name,
                                  dispatch=dispatch)
        elif name == "retry":
            step = dep.steps.filter(phase=StepPhase.DEPLOY, status=StepStatus.FAILED).order_by("position").first()
            step.status, step.finished_at, step.resume_at = StepStatus.PENDING, None, None
            step.log = [*step.log, {"t": "", "msg": f"retried by {by.username}"}]
            if step.kind == "gates":  # a new gate attempt: fresh results, timeouts counted from now
                dep.gate_attempt += 1
                step.started_at = None
                step.log.append({"t": "", "msg": f"gate attempt {dep.gate_attempt}: report fresh results"})
            step.save()
            dep.retry(by=by, reason=reason or f"retry of step '{step.name}'")
            dep.save()
            if can_proceed(dep.release.deploy):
                dep.release.deploy(by=by, reason=f"retry of deployment #{dep.pk}")
                dep.release.save()
            engine.dispatch_advance(dep.pk, dispatch=dispatch)
        elif name == "cancel":
            dep.cancel(by=by, reason=reason)
            dep.save()
    deployment.refresh_from_db()
    return deployment


def _allowed(dep, name):
    if name == "promote":
        return dep.status == DeploymentStatus.AWAITING_APPROVAL and not _waiting_for_gate_override(dep)
    if name == "retry":
        return (can_proceed(dep.retry) and not dep.steps.filter(phase=StepPhase.ROLLBACK).exists()
                and dep.steps.filter(phase=StepPhase.DEPLOY, status=StepStatus.FAILED).exists())
    if name == "rollback":
        return can_proceed(dep.rollback)
    if name == "abort":
        return can_proceed(dep.abort) and not dep.steps.filter(phase=StepPhase.ROLLBACK).exists()
    return can_proceed(getattr(dep, name))


def _waiting_for_gate_override(dep):
    step = engine.current_step(dep)
    return step is not None and step.kind == "gates"


def _promote(dep, by, reason, dispatch):
    step = engine.current_step(dep)
    if step is not None and step.phase == StepPhase.ROLLBACK:
        # a rollback step failed with manual_intervention: the person has done it by hand
        DeploymentStep.objects.filter(pk=step.pk).update(
            status=StepStatus.SKIPPED, outcome=f"resolved manually by {by.username}: {reason}".rstrip(": "))
        dep.continue_rollback(by=by, reason=reason or "manual intervention done")
    else:
        if step is not None and step.kind == "pause":
            DeploymentStep.objects.filter(pk=step.pk).update(status=StepStatus.SUCCEEDED,
                                                             outcome=f"promoted by {by.username}")
        dep.promote(by=by, reason=reason)
    dep.save()
    engine.dispatch_advance(dep.pk, dispatch=dispatch)


def available_actions(deployment, user):
    """The names of the operator actions ``user`` may take on ``deployment`` now."""
    if not access.can(user, deployment.environment, Capability.DEPLOY):
        return []
    return [name for name in ACTION_TEXT if _allowed(deployment, name)]


# --- testing gates --------------------------------------------------------------------------------------
def gate_report(*, deployment, gate, by, passed=None, failed=None, url="", junit_xml=None, dispatch=True,
                simulated=False):
    """Record a CI result for a gate: counts as JSON, or a JUnit XML report (parsed, counted); ``simulated``: the
    simulation backend's CI reported it (recorded as such)."""
    access.require_report(by, deployment.environment)
    if junit_xml is not None:
        try:
            counts = junit.counts(junit_xml)
        except junit.InvalidJUnit as exc:
            raise errors.ValidationFailed("invalid JUnit XML", field_errors={"junit": [str(exc)]}) from exc
        values = {"tests": counts["tests"], "passed": counts["passed"], "failed": counts["failures"],
                  "errors": counts["errors"], "skipped": counts["skipped"], "source": "junit",
                  "details": {"failed_cases": counts["failed_cases"], "suites": counts["suites"]}}
    else:
        field_errors = {}
        for key, value in (("passed", passed), ("failed", failed)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
                field_errors[key] = ["a whole number from 0 to 2147483647 is required"]
        if field_errors:
            raise errors.ValidationFailed("invalid gate result", field_errors=field_errors)
        values = {"tests": passed + failed, "passed": passed, "failed": failed, "errors": 0, "skipped": 0,
                  "source": "simulated" if simulated else "json", "details": {"simulated": True} if simulated else {}}
    ok = values["failed"] == 0 and values["errors"] == 0 and values["tests"] > 0
    leaks.check({"url": url or "", "details": values["details"]}, by=by, obj=deployment)
    with transaction.atomic():
        dep = _locked(deployment)
        if dep.is_finished and dep.status != DeploymentStatus.SUCCEEDED:
            raise errors.TransitionNotAllowed(f"deployment #{dep.pk} is {dep.status}: it takes no more gate results")
        result = GateResult.objects.create(deployment=dep, gate=gate, url=url or "", reported_by=by,
                                           attempt=dep.gate_attempt,
                                           status=GateResultStatus.PASSED if ok else GateResultStatus.FAILED,
                                           **values)
        audit.record(action="gate.result", obj=dep, by=by,
                     after={"gate": gate.name, "attempt": result.attempt, "status": result.status, "tests": result.tests,
                            "failed": result.failed, "errors": result.errors, "url": result.url})
        notifications.gate_result(deployment=dep, result=result)
        _wake_gates(dep, dispatch)
    return result


SIMULATED_PASSED = 240


def simulated_ci_report(*, deployment_id, gate_id, dispatch=True):
    """The simulated CI of a simulation target (its ``ci`` config) reports ``gate`` for a deployment, as the
    person who started it, through ``gate_report``: failed for the first N simulated runs of the gates its
    ``fail`` names on this environment, passed otherwise. Nothing when the gate has a result for the current
    attempt already (a person recorded one, or a second message), when the target has no simulated CI, or the
    deployment ended."""
    dep = Deployment.objects.select_related("release", "environment", "requested_by").filter(pk=deployment_id).first()
    gate = TestingGate.objects.filter(pk=gate_id).first()
    if dep is None or gate is None or gate.environment_id != dep.environment_id:
        return "nothing to report: the deployment or gate is gone"
    if dep.gate_results.filter(gate=gate, attempt=dep.gate_attempt).exists():
        return f"{gate.name}: a result is recorded already for attempt {dep.gate_attempt}"
    if dep.is_finished or dep.requested_by is None:
        return f"{gate.name}: deployment #{dep.pk} is {dep.status}: nothing to report"
    target = DeploymentTarget.objects.filter(environment=dep.environment).first()
    try:
        backend = get_backend(dep.backend, target=target, overrides=(dep.parameters or {}).get("simulate"))
    except BackendError:
        return "nothing to report: the deployment's backend is not available"
    ci = backend.simulated_ci()
    if ci is None:
        return f"{gate.name}: the {backend.name} backend has no simulated CI"
    failing_runs = ci["fail"].get(gate.slug, 0)
    runs = GateResult.objects.filter(gate=gate, source="simulated").count()
    failed = 2 if isinstance(failing_runs, int) and runs < failing_runs else 0
    try:
        result = gate_report(deployment=dep, gate=gate, by=dep.requested_by, passed=SIMULATED_PASSED - failed,
                             failed=failed, url=f"https://ci.penguinmails.local/simulated/{dep.pk}/{gate.slug}",
                             dispatch=dispatch, simulated=True)
    except errors.DomainError as exc:
        return f"{gate.name}: not recorded: {exc.message}"
    return f"{gate.name}: {result.status} (simulated run {runs + 1})"


def gate_override(*, deployment, gate, by, reason, dispatch=True):
    """Accept a failed 'warn' gate with a reason (audited); a waiting deployment continues."""
    access.require(by, [deployment.environment], Capability.DEPLOY)
    if not (reason or "").strip():
        raise errors.ValidationFailed("an override needs a reason", field_errors={"reason": ["This field is required."]})
    leaks.check({"reason": reason}, by=by, obj=deployment)
    with transaction.atomic():
        dep = _locked(deployment)
        latest = dep.gate_results.filter(gate=gate, attempt=dep.gate_attempt).order_by("-id").first()
        if gate.on_failure != GateOnFailure.WARN:
            raise errors.PermissionDenied(f"gate '{gate.name}' is '{gate.on_failure}': only 'warn' gates can be "
                                          "overridden")
        if latest is None or latest.status not in (GateResultStatus.FAILED, GateResultStatus.TIMED_OUT):
            raise errors.TransitionNotAllowed(f"gate '{gate.name}' has no failed result to override")
        result = GateResult.objects.create(
            deployment=dep, gate=gate, attempt=dep.gate_attempt, status=GateResultStatus.OVERRIDDEN, tests=latest.tests, passed=latest.passed,
            failed=latest.failed, errors=latest.errors, skipped=latest.skipped, url=latest.url, source="override",
            details={"overrides": latest.pk}, override_reason=reason, overridden_by=by)
        audit.record(action="gate.override", obj=dep, by=by, reason=reason,
                     before={"gate": gate.name, "status": latest.status}, after={"status": result.status})
        if dep.status == DeploymentStatus.AWAITING_APPROVAL and _waiting_for_gate_override(dep):
            step = engine.current_step(dep)
            DeploymentStep.objects.filter(pk=step.pk).update(status=StepStatus.PENDING, resume_at=None)
            dep.promote(by=by, reason=f"gate '{gate.name}' overridden: {reason}")
            dep.save()
            engine.dispatch_advance(dep.pk, dispatch=dispatch)
    return result


def _wake_gates(dep, dispatch):
    step = engine.current_step(dep)
    if dep.status == DeploymentStatus.RUNNING and step is not None and step.kind == "gates" \
            and step.status == StepStatus.WAITING:
        DeploymentStep.objects.filter(pk=step.pk).update(resume_at=None)
        engine.dispatch_advance(dep.pk, dispatch=dispatch)


# --- trigger alerts -------------------------------------------------------------------------------------
def trigger_alert_send(*, deployment_id, trigger_id, detail):
    """An alert-action trigger fired: the people with deploy access to the environment by e-mail and the channels
    subscribed to trigger.fired (pmrelease.delivery)."""
    dep = Deployment.objects.select_related("release", "environment").filter(pk=deployment_id).first()
    trigger = RollbackTrigger.objects.filter(pk=trigger_id).first()
    if dep is None or trigger is None:
        return 0
    people = [u for u in get_user_model().objects.filter(is_active=True).exclude(email="")
              if access.can(u, dep.environment, Capability.DEPLOY)]
    notifications.trigger_fired(deployment=dep, trigger=trigger, detail=detail, action="alert",
                                recipients=[u.email for u in people])
    return len(people)
