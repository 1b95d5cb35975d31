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


__all__ = ["Backend", "BackendError", "StepContext", "get_backend"]
