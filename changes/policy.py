"""Who must approve a change request (the approval rules, as data) and who may (separation of duties)."""
from pmrelease.approvals import Policy, Requirement, Tally, round_votes, tally
from pmrelease.roles import Role, user_roles

from . import risk
from .models import ApprovalRule, ChangeClass


def _rule_matches(rule, change, envs):
    wanted_class = rule.change_class or ChangeClass.NORMAL
    if change.change_class != wanted_class:
        return False
    if rule.change_type and rule.change_type != change.type:
        return False
    if risk.rank(effective_risk(change)) < risk.rank(rule.min_risk):
        return False
    if rule.environment_id and rule.environment_id not in {e.pk for e in envs}:
        return False
    if rule.production_only and not any(e.is_production for e in envs):
        return False
    return True


def effective_risk(change):
    return risk.effective(change.risk, change.risk_override)


class ChangePolicy(Policy):
    def read_rules(self, changes):
        """Read the active rules once for many changes (a list's): their policy checks then read none."""
        rules = list(ApprovalRule.objects.filter(active=True).select_related("role"))
        for change in changes:
            change.active_rules = rules
        return changes

    def rules(self, change):
        if change.change_class == ChangeClass.STANDARD:
            return []
        envs = list(change.environments.all())
        candidates = getattr(change, "active_rules", None)
        if candidates is None:
            candidates = ApprovalRule.objects.filter(active=True).select_related("role")
        return [r for r in candidates if _rule_matches(r, change, envs)]

    def _named(self, change):
        """The people the change names, by user name (prefetched with the change or read now)."""
        return sorted(change.approvers.all(), key=lambda person: person.get_username())

    def requirement(self, change):
        """Per role, the largest quorum a matching rule asks; with no matching rule, one release manager."""
        per_role = {}
        for rule in self.rules(change):
            per_role[rule.role.name] = max(per_role.get(rule.role.name, 0), rule.quorum)
        if not per_role and change.change_class != ChangeClass.STANDARD:
            per_role = {Role.OPERATIONS.value if change.is_emergency else Role.APPROVERS.value: 1}
        return Requirement(quorum=max([1, *per_role.values()]) if per_role else 0, per_role=per_role)

    def eligibility(self, change, user, *, for_vote=True):
        """The policy names who decides: a role a matching rule names suffices, without access to the
        environments (product approves production changes it cannot operate)."""
        if not getattr(user, "is_authenticated", False):
            return False, "log in to decide on changes"
        if change.requested_by_id == user.pk:
            return False, "the requester of a change cannot approve or reject it (separation of duties)"
        if change.implementer_id == user.pk:
            return False, "the implementer of a change cannot approve or reject it (separation of duties)"
        needed = set(self.requirement(change).per_role)
        named = any(person.pk == user.pk for person in self._named(change))
        if not user.is_superuser and not named and not needed & user_roles(user):
            return False, (f"{user.username} holds none of the roles this change needs "
                           f"({', '.join(sorted(needed)) or 'none'})")
        if for_vote and any(approver.pk == user.pk for approver, _ in round_votes(change, change.approvals)):
            return False, f"{user.username} has already decided on this change in this round"
        return True, ""

    def roles_of(self, user):
        roles = set(user_roles(user))
        if getattr(user, "is_superuser", False):
            roles |= {r.value for r in Role}
        return roles

    def progress(self, change):
        """[(role or "named: <user>", needed, approved this round)]: each role the policy names, then each person
        the change names."""
        approvers = [a for a, decision in round_votes(change, change.approvals) if decision == "approved"]
        rows = [(role, needed, sum(1 for a in approvers if role in self.roles_of(a)))
                for role, needed in sorted(self.requirement(change).per_role.items())]
        ids = {a.pk for a in approvers}
        rows += [(f"named: {person.get_username()}", 1, int(person.pk in ids))
                 for person in self._named(change)]
        return rows

    def missing_roles(self, change):
        return [role for role, needed, have in self.progress(change) if have < needed and
                not role.startswith("named: ")]

    def awaits(self, change, user):
        """Would ``user``'s approval count now (a missing role of theirs, or they are named and have not
        approved)?"""
        if set(self.missing_roles(change)) & self.roles_of(user):
            return True
        return any(have < needed for role, needed, have in self.progress(change)
                   if role == f"named: {user.get_username()}")

    def tally(self, change):
        result = tally(round_votes(change, change.approvals), self.requirement(change), self.roles_of)
        named = [role for role, needed, have in self.progress(change) if role.startswith("named: ") and have < needed]
        if not named:
            return result
        return Tally(result.approvals, result.needed, (*result.missing, *(f"no approval yet from {r[7:]}"
                                                                          for r in named)), result.rejected_by)


POLICY = ChangePolicy()
