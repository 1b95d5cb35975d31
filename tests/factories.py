"""Factories and helpers shared by the tests."""
import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from releases import services
from releases.models import Prerequisite, Release, RollbackStep


class ReleaseFactory(factory.django.DjangoModelFactory):
    """A bare release row (no plan); use ``ready_release`` for one that can be approved."""

    class Meta:
        model = Release

    version = factory.Sequence(lambda n: f"1.{n}.0")
    type = "minor"
    title = factory.Faker("sentence", nb_words=3)


class RollbackStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RollbackStep

    order = factory.Sequence(lambda n: n + 1)
    description = "Restore the previous image"
    verification = "rollout status complete"


class PrerequisiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prerequisite

    type = "database"
    description = "Migration rehearsed"
    status = "completed"
    owner = "DBA team"
    deadline = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=2))


def ready_plan(**overrides):
    plan = {
        "prerequisites": [{"type": "database", "description": "Migration rehearsed", "status": "completed",
                           "owner": "DBA team"}],
        "rollback_steps": [{"order": 1, "description": "Restore previous image",
                            "verification": "rollout complete", "timeout": 300, "on_failure": "stop"}],
    }
    plan.update(overrides)
    return plan


def make_release(*, by, envs, version=None, type="minor", quorum=1, plan=None, **data):
    """A planned release made through the service, ready for approval unless ``plan`` says otherwise."""
    return services.release_create(
        by=by, plan=ready_plan() if plan is None else plan,
        data={"version": version, "type": type, "title": data.pop("title", "Test release"),
              "environments": envs, "quorum": quorum, **data},
    )


def covering_change(release, environment, *, by, approver, **data):
    """An approved change request covering ``release`` in ``environment`` (what a production deployment needs)."""
    from changes import services as changes

    change = changes.change_create(by=by, links=[release], data={
        "title": f"Deploy {release.version} to {environment.name}", "environments": [environment],
        "implementation_plan": "Canary, then full rollout", "rollback_plan": "Roll back to the previous version",
        "testing_plan": "Staging gates passed", **data})
    changes.change_submit(change=change, by=by)
    approve_change(change, approver)
    change.refresh_from_db()
    return change


def approve_change(change, approver=None):
    """Approve ``change`` as the policy asks: ``approver`` first, then one person per role still missing (made
    for the purpose when nobody holds it)."""
    from django.contrib.auth.models import Group

    from changes import services as changes
    from changes.policy import POLICY

    if approver is not None:
        changes.change_approve(change=change, by=approver)
    change.refresh_from_db()
    while change.status in ("submitted", "in_review"):
        role = POLICY.missing_roles(change)[0]
        group = Group.objects.get(name=role)
        voter = group.user_set.exclude(pk__in=[change.requested_by_id, change.implementer_id]).exclude(
            pk__in=change.approvals.filter(round=change.approval_round).values("approver")).first()
        if voter is None:
            voter = get_user_model().objects.create_user(f"{role}-approver-{group.user_set.count()}", password="x")
            voter.groups.add(group)
        changes.change_approve(change=change, by=voter)
        change.refresh_from_db()
    return change
