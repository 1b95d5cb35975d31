"""SimulationBackend: an explicitly simulated environment for the embedded demo and the tests.

It keeps what is "deployed" in the DeploymentTarget's ``state`` and can inject failures:
``fail_health_check_at_weight`` (health checks fail once the new version has at least that much traffic),
``error_rate_after_weight`` ({"weight": 50, "rate": 0.2}: the error rate reported once that weight is reached),
``fail_deploy`` (the deploy operation fails), ``fail_rollback_steps`` (orders of rollback-plan steps that fail)
and ``step_seconds`` (each operation takes that long). Set them in the target's config under "simulation" or
per deployment in its parameters under "simulate".
"""
import json
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

    def metrics(self, ctx):
        weight = self._new_version_weight(ctx)
        rule = self.sim.get("error_rate_after_weight")
        rate = BASELINE_ERROR_RATE
        if isinstance(rule, dict) and weight >= rule.get("weight", 101):
            rate = float(rule.get("rate", 0.2))
        return {"error_rate": rate, "response_time_p95": 0.180, "traffic_weight": weight}

    def health(self, ctx):
        threshold = self.sim.get("fail_health_check_at_weight")
        weight = ctx.params.get("weight", self._new_version_weight(ctx))
        if threshold is not None and weight >= threshold:
            return [("simulated /healthz", False, f"503 from {ctx.version} at {weight:g}% (injected failure)")]
        return [("simulated /healthz", True, f"200 from {ctx.version}")]

    def run_rollback_step(self, ctx, step):
        if step["order"] in (self.sim.get("fail_rollback_steps") or []):
            return False, f"simulated failure of rollback step {step['order']}"
        ctx.log(f"simulated: {step['description']}" + (f" ($ {step['command']})" if step.get("command") else ""))
        return True, f"verified: {step['verification']}"
