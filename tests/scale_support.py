"""Bulk-generated history for the scale tests and ``bench/bench_scale.py``: releases with plans, deployments with
steps and gate results, audit events written through the portal's own recorder (``pmrelease.audit.record``).

Rows are made with ``bulk_create`` (the services would take hours at 100,000), in the shapes the services
make; audit events go through ``audit.record`` so the hash chain is real.
"""
import datetime as dt
import itertools

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from pmrelease import audit
from releases.models import (
    Deployment,
    DeploymentStep,
    Environment,
    GateResult,
    Prerequisite,
    Release,
    ReleaseApproval,
    RollbackStep,
    TestingGate,
    TestingRequirement,
)

BATCH = 2000


def reporters(count=5):
    """``count`` CI users whose names show in gate results (one per row would show an N+1 per row)."""
    User = get_user_model()
    return [User.objects.get_or_create(username=f"ci-{i}", defaults={"email": f"ci-{i}@example.com"})[0]
            for i in range(count)]


def _chunks(iterable, size=BATCH):
    iterator = iter(iterable)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def build_releases(count, *, by, approver, environments, start=0, status="deployed"):
    """``count`` releases (versions ``7.<start + i>.0``) each with a plan (prerequisite, rollback step, two
    testing requirements in two environments), two target environments and an approval."""
    environments = list(environments)
    now = timezone.now()
    made = []
    for chunk in _chunks(range(start, start + count)):
        rows = Release.objects.bulk_create([
            Release(version=f"7.{i}.0", type="minor", title=f"Release {i}", description="Generated history",
                    created_by=by, quorum=1, scheduled_for=now - dt.timedelta(hours=i), status=status)
            for i in chunk])
        through = Release.environments.through
        through.objects.bulk_create([through(release_id=r.pk, environment_id=environments[(r.pk + k) % len(
            environments)].pk) for r in rows for k in range(2)], ignore_conflicts=True)
        Prerequisite.objects.bulk_create([Prerequisite(release=r, type="database", description="Migration",
                                                       status="completed", owner="DBA team") for r in rows])
        RollbackStep.objects.bulk_create([RollbackStep(release=r, order=1, description="Restore previous image",
                                                       verification="rollout complete") for r in rows])
        TestingRequirement.objects.bulk_create([
            TestingRequirement(release=r, name=f"suite {k}", environment=environments[(r.pk + k) % len(environments)],
                               suites="unit-tests, api-tests") for r in rows for k in range(2)])
        ReleaseApproval.objects.bulk_create([ReleaseApproval(release=r, approver=approver, round=1,
                                                             decision="approved") for r in rows])
        made.extend(rows)
    return made


def build_deployments(releases, *, environments, by, users):
    """One deployment per release (newest last), each with three steps and two gate results reported by
    different ``users``."""
    environments = list(environments)
    gates = {env.pk: TestingGate.objects.get_or_create(environment=env, slug="scale-tests",
                                                        defaults={"name": "Scale tests"})[0] for env in environments}
    start = timezone.now() - dt.timedelta(minutes=len(releases) + 1)
    made = []
    for offset, chunk in enumerate(_chunks(releases)):
        deployments = Deployment.objects.bulk_create([
            Deployment(release=r, environment=environments[(offset * BATCH + n) % len(environments)],
                       strategy="rolling_update", backend="simulation", status="succeeded", requested_by=by,
                       created_at=start + dt.timedelta(minutes=offset * BATCH + n), started_at=start,
                       finished_at=start) for n, r in enumerate(chunk)])
        DeploymentStep.objects.bulk_create([
            DeploymentStep(deployment=d, position=p, kind="deploy", name=f"step {p}", status="succeeded")
            for d in deployments for p in range(3)])
        GateResult.objects.bulk_create([
            GateResult(deployment=d, gate=gates[d.environment_id], status="passed", tests=10, passed=10,
                       reported_by=users[(d.pk + k) % len(users)], overridden_by=users[(d.pk + k + 1) % len(users)])
            for d in deployments for k in range(2)])
        made.extend(deployments)
    return made


def build_audit(count, *, actors, obj=None):
    """``count`` audit events through the recorder (hash-chained) by ``actors`` in turn, with four actions,
    in transactions of ``BATCH``."""
    for chunk in _chunks(range(count)):
        with transaction.atomic():
            for i in chunk:
                audit.record(action=f"scale.generated.{i % 4}", obj=obj, object_type=None if obj else "scale.row",
                             object_id=None if obj else str(i), object_repr=f"row {i}", by=actors[i % len(actors)],
                             after={"n": i}, reason="generated history")


def build_history(count, *, by, approver, users=None):
    """``count`` releases, deployments and audit events in every environment."""
    environments = list(Environment.objects.order_by("position"))
    users = users or reporters()
    releases = build_releases(count, by=by, approver=approver, environments=environments)
    deployments = build_deployments(releases, environments=environments, by=by, users=users)
    build_audit(count, actors=[by, approver, *users])
    return releases, deployments
