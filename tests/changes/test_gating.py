"""Production gating: a deployment where a change is required needs an approved change covering its release, in
its window and outside a freeze (or an emergency change); the deployment moves the change along; a rollback is
never blocked and records itself as an emergency change."""
import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from changes import services
from changes.models import ChangeFreeze, ChangeRequest, ChangeWindow
from pmrelease import errors
from releases.deploy import engine
from releases.deploy import services as deployments
from tests.factories import approve_change, covering_change
from tests.releases.conftest import approved_release, sim_targets  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def run(dep):
    return engine.run_inline(dep.pk)


def start(release, env, users, **kw):
    kw.setdefault("strategy", "rolling-update")
    return deployments.deployment_create(release=release, environment=env, by=users["ops"], dispatch=False, **kw)


@pytest.fixture
def staged(users, envs, sim_targets, approved_release):  # noqa: F811
    """An approved release already deployed to staging (production's promotion source)."""
    release = approved_release()
    run(start(release, envs["development"], users))
    run(start(release, envs["staging"], users))
    return release


def freeze_now(envs, reason="Campaign peak", **kw):
    now = timezone.now()
    return ChangeFreeze.objects.create(reason=reason, starts_at=now - dt.timedelta(hours=1),
                                       ends_at=now + dt.timedelta(days=1), **kw)


def test_production__no_covering_change__refused_naming_what_is_missing(users, envs, staged):
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        start(staged, envs["production"], users)
    assert exc.value.reasons == [f"production requires an approved change covering release {staged.version}: "
                                 "create one (or an emergency change) and link the release"]


def test_production__change_only_submitted__refused(users, envs, staged):
    change = services.change_create(by=users["planner"], links=[staged], data={
        "title": "Deploy", "environments": [envs["production"]], "implementation_plan": "a", "rollback_plan": "b",
        "testing_plan": "c"})
    services.change_submit(change=change, by=users["planner"])
    with pytest.raises(errors.TransitionNotAllowed):
        start(staged, envs["production"], users)


def test_staging__requires_no_change__deploys(users, envs, sim_targets, approved_release):  # noqa: F811
    release = approved_release()
    run(start(release, envs["development"], users))
    assert run(start(release, envs["staging"], users)).status == "succeeded"
    assert not ChangeRequest.objects.exists()


def test_environment_policy__staging_made_gated__refused_then_production_released(users, envs, sim_targets,  # noqa: F811
                                                                                  approved_release):  # noqa: F811
    services.policy_set(environment=envs["staging"], requires=True, by=users["admin"])
    release = approved_release()
    run(start(release, envs["development"], users))
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        start(release, envs["staging"], users)
    assert "staging requires an approved change" in exc.value.reasons[0]
    services.policy_set(environment=envs["production"], requires=False, by=users["admin"])
    assert not services.requires_change(envs["production"])
    with pytest.raises(errors.PermissionDenied):
        services.policy_set(environment=envs["staging"], requires=False, by=users["dev"])


def test_production__covered__change_moves_implementing_validating_closed_after_bake(users, envs, staged):
    change = covering_change(staged, envs["production"], by=users["planner"], approver=users["approver"])
    dep = start(staged, envs["production"], users)
    change.refresh_from_db()
    assert change.status == "implementing" and change.implementer == users["ops"]
    assert change.links.filter(object_id=str(dep.pk), content_type__model="deployment").exists()
    dep = run(dep)
    assert dep.status == "succeeded"
    change.refresh_from_db()
    assert change.status == "validating"
    assert services.close_validated() == 0  # the bake time (30 minutes in production) has not passed
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=31)):
        assert services.close_validated() == 1
    change.refresh_from_db()
    assert (change.status, change.close_code) == ("closed", "successful")


def test_production__covering_change_outside_its_window__refused_naming_the_window(users, envs, staged):
    covering_change(staged, envs["production"], by=users["planner"], approver=users["approver"])
    now = timezone.now()
    other_day = (now.weekday() + 3) % 7
    ChangeWindow.objects.create(environment=envs["production"], name="Mid-week", days=[other_day],
                                start_time=dt.time(10), end_time=dt.time(16), timezone="Europe/Berlin")
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        start(staged, envs["production"], users)
    assert "outside every deployment window: Mid-week" in exc.value.reasons[0]


def test_production__inside_a_freeze__refused_naming_the_freeze(users, envs, staged):
    covering_change(staged, envs["production"], by=users["planner"], approver=users["approver"])
    freeze_now(envs).environments.set([envs["production"]])
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        start(staged, envs["production"], users)
    assert "inside the freeze 'Campaign peak'" in exc.value.reasons[0]


def test_production__emergency_change_inside_a_freeze__deploys(users, envs, staged):
    freeze_now(envs)  # every gated environment
    change = services.change_create(by=users["planner"], change_class="emergency", links=[staged], data={
        "title": "Hotfix now", "environments": [envs["production"]]})
    services.change_submit(change=change, by=users["planner"])
    services.change_approve(change=change, by=users["ops"])
    dep = run(start(staged, envs["production"], users))
    assert dep.status == "succeeded"
    change.refresh_from_db()
    assert change.status == "validating"
    assert services.close_validated() == 0  # an emergency change waits for its review


def test_production__release_not_approved__refused_even_with_a_change(users, envs, sim_targets):  # noqa: F811
    from tests.factories import make_release

    release = make_release(by=users["planner"], envs=[envs["production"]])
    covering_change(release, envs["production"], by=users["planner"], approver=users["approver"])
    with pytest.raises(errors.TransitionNotAllowed, match="only approved"):
        start(release, envs["production"], users)


def test_rollback_inside_a_freeze__proceeds_and_opens_its_emergency_change(users, envs, staged):
    change = covering_change(staged, envs["production"], by=users["planner"], approver=users["approver"])
    dep = start(staged, envs["production"], users, strategy="canary",
                parameters={"pause": 0, "simulate": {"fail_health_check_at_weight": 10}})
    freeze_now(envs, reason="Black Friday")  # the freeze begins while it runs
    dep = run(dep)
    assert dep.status == "rolled_back"
    change.refresh_from_db()
    assert change.status == "failed" and change.close_code == "unsuccessful"
    emergency = ChangeRequest.objects.get(change_class="emergency")
    assert emergency.title == f"Rollback of {staged.version} on production"
    assert emergency.status == "validating" and emergency.needs_review
    assert {link.content_type.model for link in emergency.links.all()} == {"deployment", "release"}
    assert "automatic" in emergency.description
    from changes import selectors

    assert list(selectors.open_reviews()) == [emergency]


def test_manual_rollback_after_success__inside_a_freeze_without_a_window__proceeds(users, envs, staged):
    change = covering_change(staged, envs["production"], by=users["planner"], approver=users["approver"])
    dep = run(start(staged, envs["production"], users))
    freeze_now(envs)
    now = timezone.now()
    ChangeWindow.objects.create(environment=envs["production"], name="Never now", days=[(now.weekday() + 3) % 7],
                                start_time=dt.time(10), end_time=dt.time(11))
    deployments.deployment_action(deployment=dep, name="rollback", by=users["ops"], reason="error rate up",
                                  dispatch=False)
    assert run(dep).status == "rolled_back"
    change.refresh_from_db()
    assert change.status == "failed"  # it was validating: the rollback fails it
    emergency = ChangeRequest.objects.get(change_class="emergency")
    assert emergency.requested_by == users["ops"] and "an operator" in emergency.description


def test_change_for_production_and_dr__implementing_until_both_deployed__then_validating(users, envs, staged):
    change = covering_change(staged, envs["production"], by=users["planner"], approver=users["approver"],
                             environments=[envs["production"], envs["dr"]])
    staged.environments.add(envs["dr"])
    run(start(staged, envs["production"], users))
    change.refresh_from_db()
    assert change.status == "implementing"  # dr is still to come
    dr = run(start(staged, envs["dr"], users))
    assert dr.status == "succeeded"
    change.refresh_from_db()
    assert change.status == "validating"
    assert change.links.filter(content_type__model="deployment").count() == 2


def test_edit_of_covering_change__withdraws_approval__deployment_refused_until_reapproved(users, envs, staged):
    change = covering_change(staged, envs["production"], by=users["planner"], approver=users["approver"])
    services.change_update(change=change, by=users["planner"], data={"rollback_plan": "something else"})
    with pytest.raises(errors.TransitionNotAllowed):
        start(staged, envs["production"], users)
    approve_change(change)
    assert run(start(staged, envs["production"], users)).status == "succeeded"
