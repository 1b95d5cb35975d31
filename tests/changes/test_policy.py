"""The approval policy as data: which roles approve which change (type, risk, environment, class), with quorums;
and who may decide (separation of duties, roles the policy names)."""
import pytest

from changes import services
from changes.models import ApprovalRule
from changes.policy import POLICY
from pmrelease import errors
from tests.changes.conftest import PLANS

pytestmark = pytest.mark.django_db


def roles(change):
    return POLICY.requirement(change).per_role


@pytest.mark.parametrize("type_, envs_, impact, expected", [
    ("enhancement", ["staging"], "low", {"approvers": 1}),
    ("bug_fix", ["development", "staging"], "medium", {"approvers": 1}),
    ("security", ["staging"], "low", {"approvers": 1, "security": 1}),
    ("enhancement", ["production"], "low", {"approvers": 1, "operations": 1, "product": 1}),
    ("security", ["production"], "low", {"approvers": 1, "operations": 1, "product": 1, "security": 1}),
    ("infrastructure", ["production", "dr"], "high", {"approvers": 1, "operations": 1, "product": 1}),
])
def test_default_rules__type_risk_environment__roles_asked(users, envs, type_, envs_, impact, expected):
    change = services.change_create(by=users["planner"], data={
        **PLANS, "title": "x", "type": type_, "impact": impact, "environments": [envs[n] for n in envs_]})
    assert roles(change) == expected


def test_rules__risk_threshold_environment_and_quorum__largest_quorum_per_role(users, envs, groups):
    ApprovalRule.objects.create(description="CAB for high risk", min_risk="high", role=groups["approvers"], quorum=2)
    ApprovalRule.objects.create(description="QA signs off staging", environment=envs["staging"], role=groups["qa"])
    low = services.change_create(by=users["planner"], data={**PLANS, "title": "x", "environments": [envs["staging"]]})
    assert roles(low) == {"approvers": 1, "qa": 1}
    high = services.change_create(by=users["planner"], data={**PLANS, "title": "x", "impact": "high", "likelihood": "high",
                                                              "environments": [envs["development"]]})
    assert roles(high) == {"approvers": 2}
    # raising the risk brings the high-risk rule in
    services.change_submit(change=low, by=users["planner"])
    services.change_raise_risk(change=low, by=users["approver"], level="critical", reason="billing")
    low.refresh_from_db()
    assert roles(low) == {"approvers": 2, "qa": 1}


def test_rules__inactive_rule_ignored__no_rule_left__one_release_manager(users, envs):
    ApprovalRule.objects.update(active=False)
    change = services.change_create(by=users["planner"], data={**PLANS, "title": "x", "environments": [envs["production"]]})
    assert roles(change) == {"approvers": 1}
    emergency = services.change_create(by=users["planner"], change_class="emergency",
                                       data={**PLANS, "title": "x", "environments": [envs["production"]]})
    assert roles(emergency) == {"operations": 1}


def test_classes__emergency_one_operations__standard_none__flag_change_one_operations(users, envs):
    emergency = services.change_create(by=users["planner"], change_class="emergency",
                                       data={**PLANS, "title": "x", "environments": [envs["production"]], "type": "security"})
    assert roles(emergency) == {"operations": 1}  # reduced requirements: the fast track
    flag = services.change_create(by=users["planner"], change_class="flag_change",
                                  data={**PLANS, "title": "x", "environments": [envs["production"]]})
    assert roles(flag) == {"operations": 1}


def test_quorum_of_two_per_role__one_person_cannot_fill_it(users, envs, groups, make_user):
    ApprovalRule.objects.filter(role__name="approvers").update(quorum=2)
    change = services.change_create(by=users["dev"], data={**PLANS, "title": "x", "environments": [envs["staging"]]})
    services.change_submit(change=change, by=users["dev"])
    services.change_approve(change=change, by=users["approver"])
    with pytest.raises(errors.PermissionDenied):
        services.change_approve(change=change, by=users["approver"])
    change.refresh_from_db()
    assert change.status == "in_review"
    services.change_approve(change=change, by=users["approver2"])
    change.refresh_from_db()
    assert change.status == "approved"


def test_one_person_with_two_roles__counts_for_both(users, envs, make_user):
    cab = make_user("cab", "approvers", "operations", "product")
    change = services.change_create(by=users["planner"], data={**PLANS, "title": "x", "environments": [envs["production"]]})
    services.change_submit(change=change, by=users["planner"])
    services.change_approve(change=change, by=cab)
    change.refresh_from_db()
    assert change.status == "approved"


def test_product__no_production_access__still_approves_what_the_policy_names(users, envs):
    change = services.change_create(by=users["planner"], data={**PLANS, "title": "x", "environments": [envs["production"]]})
    services.change_submit(change=change, by=users["planner"])
    assert POLICY.eligibility(change, users["product"]) == (True, "")
    assert POLICY.eligibility(change, users["support"])[0] is False


def test_rule_admin__only_administrators(users, groups):
    with pytest.raises(errors.PermissionDenied):
        services.rule_save(by=users["ops"], data={"description": "mine", "role": groups["operations"]})
    rule = services.rule_save(by=users["admin"], data={"description": "QA", "role": groups["qa"], "quorum": 1})
    assert rule.pk and services.rule_delete(rule=rule, by=users["admin"]) is None
