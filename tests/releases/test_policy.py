"""Who may approve a release (releases/policy.py): named approvers must be eligible, quorums reachable."""
import pytest

from pmrelease import errors
from releases import services
from releases.policy import POLICY
from tests.factories import make_release, ready_plan

pytestmark = pytest.mark.django_db


def test_named_approver__a_colleague_of_the_authors_choice__refused(users, envs):
    """A developer named security as the required approver, and that person approved."""
    with pytest.raises(errors.ValidationFailed) as exc:
        make_release(by=users["dev"], envs=[envs["staging"]], required_approvers=[users["security"]])
    assert "security is neither a release manager" in str(exc.value.field_errors["required_approvers"])


def test_named_approver__a_release_manager__accepted_and_only_they_may_approve(users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]], required_approvers=[users["approver2"]])
    assert POLICY.eligibility(release, users["approver"])[0] is False
    _, moved = services.release_approve(release=release, by=users["approver2"])
    assert moved


def test_named_role__not_allowed__refused_then_allowed_by_an_administrator(users, envs, groups):
    with pytest.raises(errors.ValidationFailed) as exc:
        make_release(by=users["dev"], envs=[envs["staging"]], required_roles=[groups["qa"]])
    assert "required_roles" in exc.value.field_errors
    with pytest.raises(errors.PermissionDenied, match="only an administrator"):
        services.approver_role_save(data={"group": groups["qa"]}, by=users["ops"])
    services.approver_role_save(data={"group": groups["qa"], "max_risk": "medium",
                                      "environments": [envs["staging"]]}, by=users["admin"])
    release = make_release(by=users["dev"], envs=[envs["staging"]], required_roles=[groups["qa"]])
    assert services.release_approve(release=release, by=users["qa"])[1]


def test_allowed_role__above_its_risk_or_outside_its_environments__not_eligible(users, envs, groups):
    services.approver_role_save(data={"group": groups["security"], "max_risk": "medium",
                                      "environments": [envs["staging"]]}, by=users["admin"])
    high = ready_plan(risk_assessment={"impact": "high", "likelihood": "medium"})
    with pytest.raises(errors.ValidationFailed, match="invalid approvers"):
        make_release(by=users["dev"], envs=[envs["staging"]], required_approvers=[users["security"]], plan=high)
    with pytest.raises(errors.ValidationFailed, match="invalid approvers"):
        make_release(by=users["planner"], envs=[envs["staging"], envs["production"]],
                     required_approvers=[users["security"]])
    assert make_release(by=users["dev"], envs=[envs["staging"]], required_approvers=[users["security"]])


@pytest.mark.parametrize("quorum", [4, 50])
def test_quorum__more_than_the_people_who_may_approve__refused(users, envs, quorum):
    with pytest.raises(errors.ValidationFailed) as exc:
        make_release(by=users["dev"], envs=[envs["staging"]], quorum=quorum)
    assert "can never be reached: 3 people may approve this release" in str(exc.value.field_errors["quorum"])


def test_quorum__three_of_three_release_managers__accepted(users, envs):
    assert make_release(by=users["dev"], envs=[envs["staging"]], quorum=3).quorum == 3


def test_quorum__raised_by_risk_beyond_the_approvers__reported_as_a_blocker(users, envs):
    from releases import selectors

    release = make_release(by=users["dev"], envs=[envs["staging"]], required_approvers=[users["approver"]],
                           plan=ready_plan(risk_assessment={"impact": "critical", "likelihood": "high"}))
    assert "2 approvals are needed but only 1 people may approve this release: name more approvers" in \
        selectors.approval_blockers(release)


@pytest.mark.parametrize("quorum", [51, 32_767, 9_223_372_036_854_775_807])
def test_quorum__absurd__400_naming_the_field_nothing_stored(api, users, envs, quorum):
    from releases.models import Release

    response = api(users["dev"]).post("/api/v1/releases/", {
        "type": "minor", "title": "Never approvable", "environments": ["staging"], "quorum": quorum,
        **ready_plan()}, format="json")
    assert response.status_code == 400 and "quorum" in response.json(), response.content
    assert not Release.objects.filter(title="Never approvable").exists()
