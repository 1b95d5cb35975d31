"""Factories and helpers shared by the tests."""
import datetime as dt

import factory
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
