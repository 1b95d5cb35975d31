"""What every deployment backend offers the engine."""
from collections.abc import Callable
from dataclasses import dataclass, field


class BackendError(Exception):
    """A backend operation failed; the message says what happened."""


@dataclass
class StepContext:
    deployment_id: int
    environment: str
    version: str
    previous_version: str
    strategy: str
    step: str
    params: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)
    # the fence (releases.deploy.leases): raises once another worker took the step over; call it before each effect
    check_lease: Callable[[], None] = field(default=lambda: None, repr=False)

    def log(self, message):
        self.lines.append(str(message))


class Backend:
    """Operations are declarative and idempotent: doing one twice leaves the same state as doing it once,
    so a step re-run after a lost worker has no duplicate effect. Each effect calls ``ctx.check_lease()`` first,
    so a worker that was only slow and lost its step applies nothing late (a stale "canary at 10%" after the
    new holder moved on)."""

    name = "base"

    def __init__(self, *, target, overrides=None):
        self.target = target
        self.config = dict(target.config or {}) if target is not None else {}
        self.overrides = dict(overrides or {})

    # traffic and version operations
    def deploy(self, ctx, mode):
        raise BackendError(f"the {self.name} backend cannot deploy")

    def canary(self, ctx, weight):
        raise BackendError(f"the {self.name} backend has no canary support")

    def promote_full(self, ctx):
        raise BackendError(f"the {self.name} backend has no canary support")

    def deploy_idle(self, ctx):
        raise BackendError(f"the {self.name} backend has no blue-green support")

    def switch_traffic(self, ctx):
        raise BackendError(f"the {self.name} backend has no blue-green support")

    def scale_down(self, ctx):
        raise BackendError(f"the {self.name} backend has no blue-green support")

    def restore(self, ctx):
        raise BackendError(f"the {self.name} backend cannot restore the previous version")

    def scale(self, ctx, factor):
        """Scale the running version out by ``factor`` (a rollback trigger's scale_up): a sentence saying
        what was done."""
        raise BackendError(f"the {self.name} backend cannot scale")

    # observations
    def observe(self, ctx, deployment):
        """Before an analysis: a backend that produces its own metrics (the simulator) pushes them now."""

    def health(self, ctx):
        """The backend's own health checks, [(check name, ok, detail)]: run beside the configured HTTP checks
        and reported as the backend's (None or [] when it has none)."""
        return None

    def simulated_ci(self):
        """A simulated CI (the simulator's ``ci`` config): {"after_seconds", "fail": {gate slug: runs}}, or None
        when real CI reports the gates."""
        return None

    def run_rollback_step(self, ctx, step):
        """Execute one step of the release's rollback plan: (ok, output)."""
        ctx.log(f"manual step (no command runner on the {self.name} backend): {step['description']}")
        return True, "recorded as a manual step"
