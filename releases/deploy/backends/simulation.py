"""SimulationBackend: an explicitly simulated environment for the embedded demo and the tests.

It keeps what is "deployed" in the DeploymentTarget's ``state`` and can inject failures:
``fail_health_check_at_weight`` (health checks fail once the new version has at least that much traffic),
``error_rate_after_weight`` ({"weight": 50, "rate": 0.2}: the error rate measured once that weight is reached),
``error_rate_after_success`` ({"after_seconds": 0, "rate": 0.3}: the error rate measured once the deployment
has succeeded that long: a regression its bake time catches), ``fail_deploy`` (the deploy operation fails),
``fail_rollback_steps`` (orders of rollback-plan steps that fail) and ``step_seconds`` (each operation takes
that long). ``ci`` is a simulated CI for the demo: ``{"after_seconds": 5, "fail": {"e2e-tests": 1}}`` — each
gate a deployment waits for gets a result through the real gate service after that many seconds, failing for the
first N simulated runs of the gates named in ``fail`` (by slug) on this environment, passing otherwise. Set them in the target's config under "simulation" or per deployment in its parameters under
"simulate". Its simulated traffic is measured like an application's: samples of ``error_rate`` and
``response_time_p95`` pushed to the builtin metric store (``pmrelease.providers.ingest``), for the new version
and the stable one, before each analysis and on each tick of the trigger watch.
"""
import datetime as dt
import json
import math
import time

from django.db import transaction

from .base import Backend, BackendError

BASELINE_ERROR_RATE = 0.004


class SimulationBackend(Backend):
    name = "simulation"

    def __init__(self, *, target, overrides=None):
        super().__init__(target=target, overrides=overrides)
        self.sim = {**(self.config.get("simulation") or {}), **self.overrides}

    # state, read and written under a row lock so concurrent workers never interleave
    def _mutate(self, ctx, describe, change):
        from releases.models import DeploymentTarget

        delay = float(self.sim.get("step_seconds", 0) or 0)
        if delay:
            time.sleep(delay)
        with transaction.atomic():
            target = DeploymentTarget.objects.select_for_update().get(pk=self.target.pk)
            ctx.check_lease()  # under the target's lock: a new holder's same effect waits for this one, then finds it done
            state = dict(target.state or {})
            before = json.dumps(state, sort_keys=True)
            change(state)
            if json.dumps(state, sort_keys=True) != before:  # only real changes are events: re-runs add nothing
                events = list(state.get("events", []))[-199:]
                events.append({"deployment": ctx.deployment_id, "step": ctx.step, "event": describe})
                state["events"] = events
                target.state = state
                target.save(update_fields=["state"])
                ctx.log(f"simulated: {describe}")
            else:
                ctx.log(f"simulated: already done ({describe})")
            self.target.state = state
        return state

    def _traffic_weight(self):
        state = self.target.state or {}
        canary = state.get("canary") or {}
        return canary.get("weight", 100 if state.get("version") else 0)

    def current_version(self):
        return (self.target.state or {}).get("version")

    def deploy(self, ctx, mode):
        if self.sim.get("fail_deploy"):
            raise BackendError(f"simulated failure: deploying {ctx.version} failed (fail_deploy)")

        def change(state):
            state["version"] = ctx.version
            state["canary"] = None
        return self._mutate(ctx, f"{mode} deploy of {ctx.version}", change)

    def canary(self, ctx, weight):
        def change(state):
            state["canary"] = {"version": ctx.version, "weight": weight}
        return self._mutate(ctx, f"canary {ctx.version} at {weight:g}%", change)

    def promote_full(self, ctx):
        def change(state):
            state["version"] = ctx.version
            state["canary"] = None
        return self._mutate(ctx, f"{ctx.version} promoted to 100%", change)

    def deploy_idle(self, ctx):
        def change(state):
            active = state.get("active", "blue")
            idle = "green" if active == "blue" else "blue"
            colours = dict(state.get("colours") or {})
            colours[idle] = ctx.version
            state["colours"] = colours
            state["active"] = active
        return self._mutate(ctx, f"{ctx.version} deployed to the idle colour", change)

    def switch_traffic(self, ctx):
        def change(state):
            colours = state.get("colours") or {}
            for colour, version in colours.items():
                if version == ctx.version:
                    state["active"] = colour
            state["version"] = ctx.version
        return self._mutate(ctx, f"traffic switched to {ctx.version}", change)

    def scale_down(self, ctx):
        def change(state):
            colours = dict(state.get("colours") or {})
            for colour in list(colours):
                if colour != state.get("active"):
                    colours[colour] = None
            state["colours"] = colours
        return self._mutate(ctx, "old colour scaled down", change)

    def restore(self, ctx):
        if not ctx.previous_version:
            ctx.log("no previous version recorded: the environment is left without this release's traffic")

        def change(state):
            state["version"] = ctx.previous_version or None
            state["canary"] = None
            colours = dict(state.get("colours") or {})
            for colour, version in colours.items():
                if version == ctx.previous_version:
                    state["active"] = colour
            state["colours"] = colours
        return self._mutate(ctx, f"restored {ctx.previous_version or 'nothing'}", change)

    def _new_version_weight(self, ctx):
        state = self.target.state or {}
        canary = state.get("canary") or {}
        if canary.get("version") == ctx.version:
            return canary.get("weight", 0)
        return 100 if state.get("version") == ctx.version else 0

    def observe(self, ctx, deployment):
        emit_traffic(deployment, self.target, math.floor(time.time() * 1000) / 1000)

    def scale(self, ctx, factor):
        def change(state):
            state["replicas"] = min(int(math.ceil((state.get("replicas") or 1) * factor)), 50)
        state = self._mutate(ctx, f"scaled out ×{factor:g}", change)
        return f"simulated: {state['replicas']} replicas"

    def health(self, ctx):
        threshold = self.sim.get("fail_health_check_at_weight")
        weight = ctx.params.get("weight", self._new_version_weight(ctx))
        if threshold is not None and weight >= threshold:
            return [("simulated /healthz", False, f"503 from {ctx.version} at {weight:g}% (injected failure)")]
        return [("simulated /healthz", True, f"200 from {ctx.version}")]

    @staticmethod
    def config_problems(config):
        ci = ((config or {}).get("simulation") or {}).get("ci")
        if ci is None:
            return []
        if not isinstance(ci, dict):
            return ['simulation.ci must be an object like {"after_seconds": 5, "fail": {"e2e-tests": 1}}']
        problems = []
        after = ci.get("after_seconds", 5)
        if isinstance(after, bool) or not isinstance(after, int | float) or not 0 <= after <= 3600:
            problems.append("simulation.ci.after_seconds must be a number of seconds from 0 to 3600")
        fail = ci.get("fail", {})
        if not isinstance(fail, dict) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in fail.values()):
            problems.append("simulation.ci.fail must map gate slugs to how many of their first runs fail (0 or more)")
        return problems

    def simulated_ci(self):
        ci = self.sim.get("ci")
        if ci is None:
            return None
        problems = self.config_problems({"simulation": {"ci": ci}})
        if problems:
            raise BackendError("; ".join(problems))
        return {"after_seconds": float(ci.get("after_seconds", 5)), "fail": dict(ci.get("fail") or {})}

    def run_rollback_step(self, ctx, step):
        if step["order"] in (self.sim.get("fail_rollback_steps") or []):
            return False, f"simulated failure of rollback step {step['order']}"
        ctx.log(f"simulated: {step['description']}" + (f" ($ {step['command']})" if step.get("command") else ""))
        return True, f"verified: {step['verification']}"


def simulated_error_rate(deployment, target, now):
    """What the simulated traffic of ``deployment``'s version measures at ``now`` (seconds)."""
    sim = {**((target.config or {}).get("simulation") or {}), **((deployment.parameters or {}).get("simulate") or {})}
    state = target.state or {}
    canary = state.get("canary") or {}
    version = deployment.release.version
    weight = canary.get("weight", 0) if canary.get("version") == version else (100 if state.get("version") == version
                                                                               else 0)
    rate = BASELINE_ERROR_RATE
    rule = sim.get("error_rate_after_weight")
    if isinstance(rule, dict) and weight >= rule.get("weight", 101):
        rate = float(rule.get("rate", 0.2))
    rule = sim.get("error_rate_after_success")
    if isinstance(rule, dict) and deployment.status == "succeeded" and deployment.finished_at is not None and \
            now - deployment.finished_at.timestamp() >= float(rule.get("after_seconds", 0)):
        rate = float(rule.get("rate", 0.3))
    return rate


def emit_traffic(deployment, target, now):
    """Push one sample per metric for the deployment's version (and the stable version beside it)."""
    from pmrelease import providers

    at = dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat()
    samples = [{"metric": "error_rate", "value": simulated_error_rate(deployment, target, now),
                "version": deployment.release.version, "track": "canary", "at": at},
               {"metric": "response_time_p95", "value": 0.180, "version": deployment.release.version,
                "track": "canary", "at": at}]
    if deployment.previous_version:
        samples += [{"metric": "error_rate", "value": BASELINE_ERROR_RATE, "version": deployment.previous_version,
                     "track": "stable", "at": at},
                    {"metric": "response_time_p95", "value": 0.180, "version": deployment.previous_version,
                     "track": "stable", "at": at}]
    providers.ingest(deployment.environment, samples)
