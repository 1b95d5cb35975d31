"""Deployment backends: how a step reaches the environment (Kubernetes, scripts, or the simulator)."""
from .base import Backend, BackendError, StepContext


def get_backend(kind, *, target, overrides=None):
    if kind == "kubernetes":
        from .kubernetes import KubernetesBackend

        return KubernetesBackend(target=target, overrides=overrides)
    if kind == "script":
        from .script import ScriptBackend

        return ScriptBackend(target=target, overrides=overrides)
    if kind == "simulation":
        from .simulation import SimulationBackend

        return SimulationBackend(target=target, overrides=overrides)
    raise BackendError(f"unknown deployment backend '{kind}'")


def config_problems(kind, config):
    """What is wrong with a deployment target's backend config, as messages (empty: nothing known wrong)."""
    if not isinstance(config, dict):
        return ["the backend config must be a JSON object"]
    if kind == "kubernetes":
        from .kubernetes import KubernetesBackend

        return KubernetesBackend.config_problems(config)
    if kind == "simulation":
        from .simulation import SimulationBackend

        return SimulationBackend.config_problems(config)
    return []


def stored_config_problems(kind, config):
    """``config_problems``, plus what a saved target may not hold (a Kubernetes token itself, not a reference)."""
    if kind == "kubernetes" and isinstance(config, dict):
        from .kubernetes import KubernetesBackend

        return KubernetesBackend.stored_config_problems(config)
    return config_problems(kind, config)


__all__ = ["Backend", "BackendError", "StepContext", "config_problems", "get_backend", "stored_config_problems"]
