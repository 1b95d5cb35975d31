"""Testing gates: the results a deployment waits for, their timeouts, and how they are shown.

The seed's five gates are ``SEED_TESTING_GATES`` (``seed_demo`` creates them). Reporting a result or
overriding a failed one are deployment services (``releases.deploy.services``).
"""
import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.text import slugify

from pmrelease import audit, errors

from ..models import GateOnFailure, GateResult, GateResultStatus, TestingGate

GATE_POLL_SECONDS = 15
PASSING = (GateResultStatus.PASSED, GateResultStatus.OVERRIDDEN)

SEED_TESTING_GATES = [
    # name, environment, tests, required, timeout (minutes), on_failure
    ("Unit Tests", "development", ["unit-tests", "component-tests"], True, 10, "block"),
    ("Integration Tests", "staging", ["api-tests", "database-tests"], True, 20, "block"),
    ("E2E Tests", "staging", ["user-journey-tests", "critical-path-tests"], True, 30, "warn"),
    ("Performance Tests", "staging", ["load-tests", "stress-tests"], False, 60, "warn"),
    ("Security Tests", "staging", ["sast", "dast", "dependency-scan"], True, 15, "block"),
]


def find_gate(deployment, gate_ref):
    """The deployment's environment's gate named by id, slug or name (400 listing the gates otherwise)."""
    gates = deployment.environment.testing_gates.all()
    for gate in gates:
        if str(gate.pk) == str(gate_ref) or gate.slug == gate_ref or gate.slug == slugify(str(gate_ref)):
            return gate
    names = ", ".join(g.slug for g in gates) or "none"
    raise errors.ValidationFailed(f"{deployment.environment.name} has no gate '{gate_ref}' (gates: {names})")


def ensure_gate(environment, *, name, tests, required, timeout, on_failure, position=0):
    gate, _ = TestingGate.objects.get_or_create(environment=environment, slug=slugify(name), defaults={
        "name": name, "tests": tests, "required": required, "timeout": timeout, "on_failure": on_failure,
        "position": position})
    return gate


def gate_states(dep):
    """[(gate, latest result of the current attempt or None)] for the deployment's environment."""
    latest = {}
    for result in dep.gate_results.filter(attempt=dep.gate_attempt).select_related("gate").order_by("id"):
        latest[result.gate_id] = result
    return [(gate, latest.get(gate.pk)) for gate in dep.environment.testing_gates.all()]


def failed_required(dep):
    """Names of the required gates of a deployment that did not pass (promotion checks them)."""
    return [gate.name for gate, result in gate_states(dep)
            if gate.required and (result is None or result.status not in PASSING)]


def gate_states_for_display(dep):
    """[(gate, latest result or None, overridable)] for a deployment's page."""
    rows = []
    for gate, result in gate_states(dep):
        overridable = (gate.on_failure == GateOnFailure.WARN and result is not None
                       and result.status in (GateResultStatus.FAILED, GateResultStatus.TIMED_OUT))
        rows.append((gate, result, overridable))
    return rows


@dataclass
class Verdict:
    """Where a deployment's gates stand: what blocks, what waits (with the soonest deadline), what warns."""

    blocking: list = field(default_factory=list)
    waiting: list = field(default_factory=list)  # [(gate, deadline)]
    warnings: list = field(default_factory=list)
    lines: list = field(default_factory=list)

    def poll_in(self, now):
        soonest = min(deadline for _, deadline in self.waiting)
        return min(GATE_POLL_SECONDS, max((soonest - now).total_seconds(), 0.5))


def evaluate(dep, *, started, now=None):
    """Judge the gates of ``dep`` whose wait began at ``started``; a gate with no result past its timeout
    gets a ``timed_out`` result (recorded and audited) and then counts as failed."""
    now = now or timezone.now()
    verdict = Verdict()
    for gate, result in gate_states(dep):
        if result is None:
            deadline = started + dt.timedelta(minutes=gate.timeout)
            if now < deadline:
                verdict.waiting.append((gate, deadline))
                continue
            result = GateResult.objects.create(deployment=dep, gate=gate, status=GateResultStatus.TIMED_OUT,
                                               attempt=dep.gate_attempt,
                                               source="timeout", details={"timeout_minutes": gate.timeout})
            audit.record(action="gate.timed_out", obj=dep, after={"gate": gate.name, "timeout_minutes": gate.timeout})
        if result.status in PASSING:
            verdict.lines.append(f"✓ {gate.name}: {result.get_status_display().lower()}")
            continue
        label = f"{gate.name} ({result.get_status_display().lower()})"
        if gate.on_failure == GateOnFailure.IGNORE:
            verdict.lines.append(f"· {label}: ignored (recorded only)")
        elif gate.on_failure == GateOnFailure.WARN:
            verdict.warnings.append(label)
        else:
            verdict.blocking.append(label)
    return verdict
