"""The promotion path rules (no Django import): may a release go to an environment now?

Inputs are plain data so the rules can be tested alone: the environment graph as dicts and the
release's succeeded deployments with the gate outcomes of each.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Env:
    name: str
    tier: str
    promotes_from: str | None = None  # the environment that promotes to this one
    attached_to: str | None = None
    attachment: str = ""


@dataclass(frozen=True)
class Success:
    environment: str
    failed_required_gates: tuple = field(default_factory=tuple)  # names of required gates not passed


def refusals(*, release_type, target, envs, successes, targets):
    """Reasons the release may not be deployed to ``target`` (empty list: allowed).

    ``envs``: {name: Env}; ``successes``: {environment name: Success}; ``targets``: names the release targets.
    """
    reasons = []
    env = envs[target]
    if target not in targets:
        reasons.append(f"the release does not target {target} (it targets {', '.join(sorted(targets)) or 'nothing'})")
        return reasons

    def need(upstream, why):
        success = successes.get(upstream)
        if success is None:
            reasons.append(f"{target} needs a successful deployment to {upstream} first ({why})")
        elif success.failed_required_gates:
            reasons.append(f"{upstream}'s required gates did not pass: {', '.join(success.failed_required_gates)}")

    if env.attachment == "mirror" and env.attached_to:
        need(env.attached_to, f"{target} mirrors {env.attached_to}")
        return reasons
    if env.attachment in ("testing", "workstation") and env.attached_to:
        base = envs.get(env.attached_to)
        upstream = base.promotes_from if base else None
        if env.attachment == "testing" and upstream and not _skippable(release_type, envs[upstream]):
            need(upstream, f"{target} hangs off {env.attached_to}")
        return reasons
    upstream = env.promotes_from
    if upstream is None:
        return reasons
    if _skippable(release_type, envs[upstream]):
        # a hotfix may skip development, but never the gates of what comes after it
        grand = envs[upstream].promotes_from
        if grand and not _skippable(release_type, envs[grand]):
            need(grand, "promotion path")
        return reasons
    need(upstream, "promotion path")
    return reasons


def _skippable(release_type, env):
    return release_type == "hotfix" and env.tier == "development"
