"""Step leases tied to worker liveness, fenced by generation.

A worker that claims a step holds a *short* lease (``settings.DEPLOY_LEASE_SECONDS``, or the target's
``lease_seconds``) and a new *generation* (the fencing token: one more on every claim). While the step executes,
a heartbeat thread renews the lease every third of its length — only while the generation is still the worker's.
So a worker killed with ``kill -9`` stops renewing and its step is free again within one lease; the watchdog
(every ``DEPLOY_WATCHDOG_SECONDS``) hands it to another worker, which claims it with the next generation.

A worker that is only slow (stopped past its lease, then continued) finds its generation gone: the heartbeat
stops renewing, every backend effect checks the fence first (``StepContext.check_lease`` raises ``LeaseLost``) and
``engine.complete`` discards its result. A step done and committed is never re-run, and nothing is applied twice.
"""
import datetime as dt
import logging
import os
import socket
import threading

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from ..models import DeploymentStep, StepStatus
from .backends import BackendError

logger = logging.getLogger(__name__)


class LeaseLost(BackendError):
    """This worker's lease on the step is gone: another worker took the step over."""


def holder():
    """Who holds a lease: this process, as host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_seconds(target):
    config = (target.config or {}) if target is not None else {}
    return float(config.get("lease_seconds", settings.DEPLOY_LEASE_SECONDS))


def holds(step_id, generation):
    """Is ``generation`` still the step's running lease?"""
    return DeploymentStep.objects.filter(pk=step_id, status=StepStatus.RUNNING,
                                         lease_generation=generation).exists()


def fence(step_id, generation):
    """A check for backends to call before each effect: raises LeaseLost once the step was taken over."""
    def check():
        if not holds(step_id, generation):
            raise LeaseLost(f"the lease (generation {generation}) on this step was lost: another worker took it "
                            "over, so this worker's effect is not applied")
    return check


def renew(step_id, generation, seconds):
    """Extend the lease if it is still ours; False once it is not."""
    until = timezone.now() + dt.timedelta(seconds=seconds)
    return bool(DeploymentStep.objects.filter(pk=step_id, status=StepStatus.RUNNING, lease_generation=generation)
                .update(lease_until=until))


class Heartbeat:
    """Renews a step's lease from a thread while the step executes (``with Heartbeat(...):``).

    Not started inside an outer transaction (a test's): another connection could not see the step there, and
    nothing else can take it over meanwhile."""

    def __init__(self, step_id, generation, seconds):
        self.step_id, self.generation, self.seconds = step_id, generation, seconds
        self.interval = max(seconds / 3, 0.05)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._run, name=f"lease-{self.step_id}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.seconds)
        return False

    def _run(self):
        try:
            while not self._stop.wait(self.interval):
                try:
                    if not renew(self.step_id, self.generation, self.seconds):
                        logger.warning("step %s: lease generation %s lost (taken over); not renewing",
                                       self.step_id, self.generation)
                        self.lost.set()
                        return
                except Exception:  # the database away for a moment: try again next beat, the lease may run out
                    logger.exception("step %s: lease renewal failed", self.step_id)
                    close_old_connections()
        finally:
            connection.close()
