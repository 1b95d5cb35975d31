"""What the deployment engine needs from the apps above it, provided by them at start-up."""
from pmrelease.registry import Hook, Registry

# flags: set a flag's rollout percentage in an environment for a deployment of the feature-flag strategy.
# Called as set_flag_rollout(environment=..., key=..., percentage=..., reason=...); raises a DomainError
# saying why when it cannot.
set_flag_rollout = Hook("set_flag_rollout", "the flags app ramps a flag for the feature-flag strategy")

# changes: may ``release`` deploy to ``environment`` now? deployment_gate(release=..., environment=...) ->
# (refusals, change): refusals empty when it may (an environment that requires no change always may).
# A rollback never asks.
deployment_gate = Hook("deployment_gate", "the changes app gates deployments to environments that require a change")

# Other things the rollback watch judges in each of its rounds, by name (flags: the guards of gradual ramps).
# Each is called as participant(now=<unix seconds>, tick_seconds=..., dispatch=...) -> a report (dict), after the
# deployments' decisions are committed; one that fails is logged and leaves the others.
watch_participants = Registry("rollback-watch participant")
