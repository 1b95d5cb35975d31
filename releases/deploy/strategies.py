"""Deployment strategies → an ordered plan of steps (no Django import).

A plan is a list of ``{"kind", "name", "params"}``. The engine executes the kinds:

- ``deploy``: put the new version everywhere (rolling update or all at once) and wait for the rollout
- ``canary``: run the new version beside the old one with ``weight`` percent of the traffic
- ``promote_full``: the new version becomes the stable one (end of a canary)
- ``deploy_idle``: blue-green: deploy to the idle colour, no traffic yet
- ``switch_traffic``: blue-green: send traffic to the newly deployed colour
- ``scale_down``: blue-green: after ``delay`` seconds, scale the old colour down
- ``ramp_flag``: feature-flag: set the named flag's rollout to ``percentage``
- ``pause``: wait ``duration`` seconds, or (duration None) for a person to promote
- ``analysis``: judge the deployment's rollback triggers over the pause before it (``window``)
- ``health_check``: run the environment's HTTP health checks
- ``gates``: wait for the environment's testing gates
- ``finalize``: record the deployed version
"""

STRATEGIES = ("rolling-update", "blue-green", "canary", "feature-flag", "big-bang")
DEFAULT_CANARY_STEPS = (10, 50, 100)
DEFAULT_PAUSE = 300  # seconds
MAX_WAIT = 7 * 24 * 3600  # a timed pause or delay longer than a week is a typo
# Every parameter a deployment takes (a misspelt one is refused, never ignored for a default).
KNOWN = ("steps", "pause", "duration", "rollout_percentage", "health_checks", "rollback_triggers",
         "scale_down_delay", "auto_promote", "flag", "simulate")
SIMULATE = ("fail_health_check_at_weight", "error_rate_after_weight", "error_rate_after_success", "fail_deploy",
            "fail_rollback_steps", "step_seconds")
HEALTH_CHECK_KEYS = ("name", "url", "expected_status", "timeout", "retries", "interval")


class PlanError(ValueError):
    """Invalid strategy parameters; ``errors`` maps parameter → message."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _step(kind, name, **params):
    return {"kind": kind, "name": name, "params": params}


def normalise(strategy, params):
    """Validate and complete strategy parameters; accepts the seed's camelCase names too."""
    params = dict(params or {})
    errors = {}
    if strategy not in STRATEGIES:
        raise PlanError({"strategy": f"must be one of {', '.join(STRATEGIES)}"})
    aliases = {"rolloutPercentage": "rollout_percentage", "healthChecks": "health_checks",
               "rollbackTriggers": "rollback_triggers", "scaleDownDelay": "scale_down_delay",
               "autoPromote": "auto_promote"}
    for camel, snake in aliases.items():
        if camel in params:
            params.setdefault(snake, params.pop(camel))
    unknown = sorted(set(params) - set(KNOWN))
    if unknown:
        raise PlanError({name: f"unknown parameter (known: {', '.join(KNOWN)})" for name in unknown})

    steps = params.get("steps")
    if steps is None:
        first = params.get("rollout_percentage")
        steps = [first, 50, 100] if isinstance(first, int | float) and 0 < first < 50 else list(DEFAULT_CANARY_STEPS)
    if (not isinstance(steps, list) or not steps
            or not all(isinstance(w, int | float) and not isinstance(w, bool) and 0 < w <= 100 for w in steps)
            or any(b <= a for a, b in zip(steps, steps[1:], strict=False))):
        errors["steps"] = "a rising list of percentages in (0, 100], e.g. [10, 50, 100]"
    elif steps[-1] != 100:
        steps = [*steps, 100]
    params["steps"] = steps

    pause = params.get("pause")
    if "pause" not in params:
        duration = params.get("duration")  # seed: deployment duration in minutes, spread over the pauses
        if isinstance(duration, int | float) and duration > 0 and isinstance(steps, list) and len(steps) > 1:
            pause = int(duration * 60 / (len(steps) - 1))
        else:
            pause = DEFAULT_PAUSE
    if pause is not None and (not isinstance(pause, int | float) or isinstance(pause, bool)
                              or not 0 <= pause <= MAX_WAIT):
        errors["pause"] = (f"seconds to wait between steps (0 to {MAX_WAIT}), or null to wait for a person to "
                           "promote")
    params["pause"] = pause

    triggers = params.get("rollback_triggers")  # None: the release's or the environment's triggers
    if triggers is not None and not isinstance(triggers, list):
        errors["rollback_triggers"] = ("a list of {metric, operator, threshold, duration, action, cooldown, compare, "
                                       "no_data} (checked against the environment's metrics when the deployment is "
                                       "created)")

    delay = params.setdefault("scale_down_delay", 30)
    if not isinstance(delay, int | float) or isinstance(delay, bool) or not 0 <= delay <= MAX_WAIT:
        errors["scale_down_delay"] = f"seconds (0 to {MAX_WAIT}) to keep the old colour before scaling it down"
    params.setdefault("auto_promote", True)
    if not isinstance(params["auto_promote"], bool):
        errors["auto_promote"] = "true or false"
    duration = params.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float)
                                 or not 0 < duration <= MAX_WAIT / 60):
        errors["duration"] = f"minutes (more than 0, at most {MAX_WAIT // 60}) to spread over the pauses"
    checks = params.setdefault("health_checks", [])
    problem = _health_checks_problem(checks)
    if problem:
        errors["health_checks"] = problem
    simulate = params.get("simulate")
    if simulate is not None:
        if not isinstance(simulate, dict):
            errors["simulate"] = "an object of simulation settings"
        elif set(simulate) - set(SIMULATE):
            errors["simulate"] = (f"unknown simulation settings {', '.join(sorted(set(simulate) - set(SIMULATE)))} "
                                  f"(known: {', '.join(SIMULATE)})")
    if strategy == "feature-flag":
        if not (isinstance(params.get("flag"), str) and params["flag"].strip()):
            errors["flag"] = "the feature-flag strategy needs the key of the flag to ramp"
        if isinstance(steps, list) and any(isinstance(w, float) and not w.is_integer() for w in steps):
            errors["steps"] = "flag rollouts take whole percentages"
    if errors:
        raise PlanError(errors)
    return params


def _health_checks_problem(checks):
    """What is wrong with a deployment's extra HTTP health checks (None: nothing)."""
    shape = ("a list of {name, url (http or https), expected_status, timeout, retries, interval}, checked with "
             "the environment's own after each traffic step")
    if not isinstance(checks, list) or len(checks) > 20:
        return shape + " (at most 20)"
    for index, check in enumerate(checks):
        if not isinstance(check, dict) or set(check) - set(HEALTH_CHECK_KEYS):
            return f"[{index}]: " + shape
        url = check.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 500:
            return f"[{index}].url: an http(s) URL is required"
        for key, low, high in (("expected_status", 100, 599), ("timeout", 0.1, 60), ("retries", 1, 10),
                               ("interval", 0, 60)):
            value = check.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not low <= value <= high):
                return f"[{index}].{key}: a number from {low:g} to {high:g}"
    return None


def plan(strategy, params, *, has_gates=True):
    """The ordered steps of a deployment (params must come from ``normalise``)."""
    steps = []
    pause = params["pause"]

    def pause_and_analyse(label):
        if pause is None:
            steps.append(_step("pause", f"Wait for promotion after {label}", duration=None))
        elif pause > 0:
            steps.append(_step("pause", f"Pause {pause:g} s after {label}", duration=pause))
        steps.append(_step("analysis", f"Analysis after {label}", window=pause))

    if strategy in ("rolling-update", "big-bang"):
        mode = "rolling" if strategy == "rolling-update" else "recreate"
        steps.append(_step("deploy", "Deploy the new version" + (" (rolling)" if mode == "rolling" else " (all at once)"),
                           mode=mode))
        steps.append(_step("health_check", "Health checks"))
    elif strategy == "canary":
        for weight in params["steps"]:
            if weight < 100:
                steps.append(_step("canary", f"Canary at {weight:g}% of traffic", weight=weight))
                steps.append(_step("health_check", f"Health checks at {weight:g}%", weight=weight))
                pause_and_analyse(f"{weight:g}%")
            else:
                steps.append(_step("promote_full", "Promote the canary to 100%", weight=100))
                steps.append(_step("health_check", "Health checks at 100%", weight=100))
    elif strategy == "blue-green":
        steps.append(_step("deploy_idle", "Deploy to the idle colour"))
        steps.append(_step("health_check", "Health checks on the idle colour", target="idle"))
        if not params["auto_promote"]:
            steps.append(_step("pause", "Wait for promotion before switching traffic", duration=None))
        steps.append(_step("switch_traffic", "Switch traffic to the new colour"))
        steps.append(_step("health_check", "Health checks after the switch"))
        steps.append(_step("scale_down", f"Keep the old colour {params['scale_down_delay']:g} s, then scale it down",
                           delay=params["scale_down_delay"]))
    elif strategy == "feature-flag":
        steps.append(_step("deploy", "Deploy dark (flag off)", mode="rolling"))
        steps.append(_step("health_check", "Health checks (dark)"))
        for weight in params["steps"]:
            steps.append(_step("ramp_flag", f"Flag {params['flag']} at {weight:g}%", flag=params["flag"],
                               percentage=weight))
            if weight < 100:
                pause_and_analyse(f"flag at {weight:g}%")
    if has_gates:
        steps.append(_step("gates", "Testing gates"))
    steps.append(_step("finalize", "Record the deployed version"))
    return steps
