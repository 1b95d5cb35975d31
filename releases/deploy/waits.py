"""Waiting for a deployment: what a long-poll (``?wait=``) and the event stream (``/events/``) watch.

A deployment's **fingerprint** (``fingerprints``) changes when it leaves its state, moves to another step, or
one of its steps starts, ends or logs a line: it is the long-poll's ETag. Waiters do not query the database each:
per event loop one ``Hub`` polls the fingerprints of every watched deployment in one query every
``DEPLOYMENT_WAIT_POLL_SECONDS`` and wakes the waiters whose deployment changed. Under the ASGI server
(``pmrelease.asgi``) that is one loop per process, so N waiters cost one query per poll and no thread each;
under WSGI (gunicorn's threads, runserver, the test server) each waiting request runs its own loop in its own
thread (documented in docs/pipelines.md).

``step_events`` turns two snapshots of a deployment's steps into the stream's events (pure).
"""
import asyncio
import hashlib

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Count, Max

from ..models import Deployment, DeploymentStatus

TERMINAL = (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK,
            DeploymentStatus.CANCELLED)
MAX_WAIT_SECONDS = 60


def fingerprints(ids):
    """{deployment_id: (etag, status)} for the ids that exist, in one query."""
    rows = (Deployment.objects.filter(pk__in=list(ids))
            .annotate(started=Max("steps__started_at"), finished=Max("steps__finished_at"), steps_n=Count("steps"))
            .values_list("pk", "status", "current_step", "waiting_for", "failure_reason", "started", "finished",
                         "steps_n", "gate_attempt"))
    result = {}
    for pk, status, *rest in rows:
        text = "|".join(str(v) for v in (status, *rest))
        result[pk] = (hashlib.sha256(text.encode()).hexdigest()[:20], status)
    return result


def etag_of(deployment_id):
    return fingerprints([deployment_id]).get(deployment_id, (None, None))


def _poll_seconds():
    return float(getattr(settings, "DEPLOYMENT_WAIT_POLL_SECONDS", 0.2))


class Hub:
    """The waiters of one event loop and the task that polls for them."""

    def __init__(self):
        self.waiters = {}  # deployment_id -> {future: etag}
        self.task = None

    async def wait(self, deployment_id, etag, timeout):
        """Until the deployment's fingerprint differs from ``etag`` (returns the new (etag, status)) or
        ``timeout`` seconds pass (returns None)."""
        future = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(deployment_id, {})[future] = etag
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._poll())
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            watching = self.waiters.get(deployment_id, {})
            watching.pop(future, None)
            if not watching:
                self.waiters.pop(deployment_id, None)

    async def _poll(self):
        while self.waiters:
            queried = list(self.waiters)
            states = await sync_to_async(fingerprints, thread_sensitive=False)(queried)
            for dep_id in queried:  # not the waiters that came while the query ran: they are judged next time
                watching = self.waiters.get(dep_id, {})
                state = states.get(dep_id, (None, None))  # (None, None): the deployment is gone
                for future, etag in list(watching.items()):
                    if state[0] != etag and not future.done():
                        future.set_result(state)
            await asyncio.sleep(_poll_seconds())


_hubs = {}


def hub():
    """The running loop's hub (made on first use; loops that ended are forgotten)."""
    loop = asyncio.get_running_loop()
    for other in [other for other in _hubs if other.is_closed()]:
        del _hubs[other]
    if loop not in _hubs:
        _hubs[loop] = Hub()
    return _hubs[loop]


def wait_seconds(raw):
    """The ``wait`` query parameter as seconds (0 < s ≤ MAX_WAIT_SECONDS); raises ValueError saying what is
    wrong."""
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS}") from None
    if not 0 <= seconds <= MAX_WAIT_SECONDS or seconds != seconds:
        raise ValueError(f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS}")
    return seconds


# --- the event stream ----------------------------------------------------------------------------------------
def snapshot(deployment_id):
    """What the stream compares: the deployment's status and, per step, its status and log."""
    dep = Deployment.objects.filter(pk=deployment_id).values("status", "waiting_for", "failure_reason").first()
    if dep is None:
        return None
    steps = list(dep_steps(deployment_id))
    return {"status": dep["status"], "waiting_for": dep["waiting_for"], "failure_reason": dep["failure_reason"],
            "steps": steps}


def dep_steps(deployment_id):
    from ..models import DeploymentStep

    return (DeploymentStep.objects.filter(deployment_id=deployment_id).order_by("phase", "position")
            .values("id", "phase", "position", "kind", "name", "status", "outcome", "log"))


def step_events(before, after):
    """The events between two snapshots (``before`` None: everything so far), in order: ``step`` (a step's
    status changed), ``log`` (each new line), ``status`` (the deployment's status changed)."""
    events = []
    old_steps = {s["id"]: s for s in (before or {}).get("steps", [])}
    for step in after["steps"]:
        old = old_steps.get(step["id"])
        head = {"step": step["position"], "phase": step["phase"], "name": step["name"], "kind": step["kind"]}
        if old is None or old["status"] != step["status"]:
            if old is not None or step["status"] != "pending":
                events.append(("step", {**head, "status": step["status"], "outcome": step["outcome"]}))
        for line in step["log"][len(old["log"]) if old else 0:]:
            events.append(("log", {**head, "t": line.get("t", ""), "msg": line.get("msg", "")}))
    if before is None or before["status"] != after["status"]:
        events.append(("status", {"status": after["status"], "waiting_for": after["waiting_for"],
                                  "failure_reason": after["failure_reason"],
                                  "terminal": after["status"] in TERMINAL}))
    return events
