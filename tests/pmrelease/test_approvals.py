"""Approval-round arithmetic (pmrelease/approvals.py): the pure tally every approvable subject uses."""
from pmrelease.approvals import Decision, Requirement, tally

A, R = Decision.APPROVED, Decision.REJECTED


def test_tally__quorum_met__satisfied():
    result = tally([("ann", A), ("bob", A)], Requirement(quorum=2))
    assert result.satisfied and result.approvals == 2 and result.missing == ()


def test_tally__short_of_quorum__says_how_many():
    result = tally([("ann", A)], Requirement(quorum=3))
    assert not result.satisfied and result.missing == ("1 of 3 required approvals",)


def test_tally__per_role__each_role_counted_one_vote_may_serve_two():
    roles = {"ann": {"operations", "product"}, "bob": {"engineering"}}
    requirement = Requirement(quorum=2, per_role={"operations": 1, "product": 1, "security": 1})
    result = tally([("ann", A), ("bob", A)], requirement, roles_of=lambda a: roles.get(a, set()))
    assert result.missing == ("0 of 1 approvals from security",)


def test_tally__a_rejection__never_satisfied():
    result = tally([("ann", A), ("bob", R)], Requirement(quorum=1))
    assert not result.satisfied and result.rejected_by == ("bob",)
