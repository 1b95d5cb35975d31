"""The seed's rollout strategies (immediate, percentage, user_segment, gradual) as Unleash strategies.

Pure functions, no Django import: the admin's rollout form and the services build strategies with these.
"""
from __future__ import annotations

_PERCENT_KEY = {
    "flexibleRollout": "rollout",
    "gradualRolloutUserId": "percentage",
    "gradualRolloutSessionId": "percentage",
    "gradualRolloutRandom": "percentage",
}


def immediate():
    """On for everyone (Unleash's ``default`` strategy)."""
    return [{"name": "default", "parameters": {}, "constraints": []}]


def percentage(key, percent, *, stickiness="default", constraints=None, segments=None):
    strategy = {
        "name": "flexibleRollout",
        "parameters": {"rollout": str(int(percent)), "stickiness": stickiness or "default", "groupId": key},
        "constraints": list(constraints or []),
    }
    if segments:
        strategy["segments"] = [int(s) for s in segments]
    return [strategy]


def user_segment(key, *, segments=(), user_ids=()):
    """Users in any of the segments, and/or the listed user ids."""
    strategies = []
    if segments:
        strategies.extend(percentage(key, 100, segments=segments))
    ids = [str(u).strip() for u in user_ids if str(u).strip()]
    if ids:
        strategies.append({"name": "userWithId", "parameters": {"userIds": ",".join(ids)}, "constraints": []})
    return strategies


def parse_steps(text):
    """``"5, 25@60, 50@60, 100@120"`` → ``[{"percentage": 5, "minutes": 0}, {"percentage": 25, "minutes": 60}…]``.

    Each step is ``percentage[@minutes after the previous step]``. Raises ValueError with a message.
    """
    steps = []
    for index, part in enumerate(p.strip() for p in str(text).split(",")):
        if not part:
            continue
        pct, _, minutes = part.partition("@")
        try:
            step = {"percentage": int(pct.strip()), "minutes": int(minutes.strip() or 0)}
        except ValueError:
            raise ValueError(f"step {index + 1} {part!r} is not 'percentage@minutes' (e.g. 25@60)") from None
        steps.append(step)
    return steps


def validate_steps(steps):
    """Messages about a ramp's steps (empty = valid): 1-50 steps, 0-100 %, not decreasing, minutes >= 0."""
    if not isinstance(steps, list) or not steps:
        return ["a gradual rollout needs at least one step"]
    if len(steps) > 50:
        return ["a gradual rollout has at most 50 steps"]
    errors = []
    previous = -1
    for index, step in enumerate(steps, start=1):
        if not isinstance(step, dict):
            errors.append(f"step {index} must be an object with percentage and minutes")
            continue
        pct, minutes = step.get("percentage"), step.get("minutes", 0)
        if isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100:
            errors.append(f"step {index}: percentage {pct!r} must be a whole number between 0 and 100")
            continue
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0:
            errors.append(f"step {index}: minutes {minutes!r} must be a whole number, 0 or more")
        if pct < previous:
            errors.append(f"step {index}: {pct}% is lower than the previous step ({previous}%)")
        previous = pct
    return errors


def rollout_percentage(strategies):
    """The percentage of the first rollout strategy, or None."""
    for strategy in strategies or ():
        key = _PERCENT_KEY.get(strategy.get("name"))
        if key is not None:
            try:
                return int(float((strategy.get("parameters") or {}).get(key, 0)))
            except (TypeError, ValueError):
                return 0
    return None


def with_percentage(strategies, key, percent):
    """Strategies with the first rollout strategy's percentage set to ``percent``.

    With no rollout strategy: an empty or ``default``-only list (on for everyone) becomes one flexibleRollout;
    otherwise a flexibleRollout is added beside the existing strategies.
    """
    result = [dict(s, parameters=dict(s.get("parameters") or {})) for s in strategies or ()]
    for strategy in result:
        param = _PERCENT_KEY.get(strategy.get("name"))
        if param is not None:
            strategy["parameters"][param] = str(int(percent))
            return result
    if all(s.get("name") == "default" and not s.get("constraints") and not s.get("segments") for s in result):
        return percentage(key, percent)
    return result + percentage(key, percent)
