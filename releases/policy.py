"""Who may approve a release, and what its approval round needs (the releases app's approval policy).

- A release is approved by its named approvers (people, or members of named roles) or, when none are named,
  by the approvers role (release managers). Superusers may always.
- Named approvers must themselves be eligible: release managers, or members of a role an administrator has
  allowed (``ApproverRole``) for the release's risk and every environment it targets. An author cannot pick
  a colleague of their choice.
- Nobody approves their own release, and an approver needs read access to every target environment.
- The round needs the release's quorum (raised by the risk matrix), which can never exceed the number of
  people who may approve it.
"""
from django.contrib.auth import get_user_model
from django.db.models import Q

from pmrelease.approvals import Policy, Requirement, round_votes, tally
from pmrelease.roles import Capability, Role, user_roles

from . import access
from .models import ApproverRole, Level

RISK_ORDER = list(Level.values)


def _risk_level(release):
    assessment = getattr(release, "risk_assessment", None) if release.pk else None
    return assessment.level if assessment is not None else Level.LOW


def _is_release_manager(user):
    return getattr(user, "is_superuser", False) or Role.APPROVERS.value in user_roles(user)


class ReleasePolicy(Policy):
    def allowed_roles(self, release):
        """Names of the roles an administrator allowed to approve this release (risk and environments)."""
        level = RISK_ORDER.index(_risk_level(release))
        targets = {e.pk for e in release.environments.all()}
        allowed = set()
        for row in ApproverRole.objects.select_related("group").prefetch_related("environments"):
            envs = {e.pk for e in row.environments.all()}
            if RISK_ORDER.index(row.max_risk) >= level and (not envs or targets <= envs):
                allowed.add(row.group.name)
        return allowed

    def may_be_named(self, release, user):
        """(ok, reason): may ``user`` be a named approver of ``release``?"""
        if not user.is_active:
            return False, f"{user.get_username()} is not an active user"
        if release.created_by_id == user.pk:
            return False, f"{user.get_username()} wrote the release and cannot approve it"
        if not (_is_release_manager(user) or user_roles(user) & self.allowed_roles(release)):
            return False, (f"{user.get_username()} is neither a release manager ('{Role.APPROVERS.value}') nor in a "
                           f"role allowed to approve {_risk_level(release)}-risk releases to these environments")
        for env in release.environments.all():
            if not access.can(user, env, Capability.APPROVE):
                return False, f"{user.get_username()} has no access to {env.name}, which the release targets"
        return True, ""

    def role_may_be_named(self, release, group):
        return group.name == Role.APPROVERS.value or group.name in self.allowed_roles(release)

    def eligibility(self, release, user, *, for_vote=True):
        if not getattr(user, "is_authenticated", False):
            return False, "log in to approve releases"
        if release.created_by_id == user.pk:
            return False, "the author of a release cannot approve or reject it (separation of duties)"
        named_users = {u.pk for u in release.required_approvers.all()}
        named_roles = {g.name for g in release.required_roles.all()}
        if named_users or named_roles:
            if not (user.pk in named_users or named_roles & user_roles(user) or user.is_superuser):
                return False, f"{user.username} is not among this release's approvers"
            if not user.is_superuser and not self.may_be_named(release, user)[0]:
                return False, self.may_be_named(release, user)[1]
        elif not _is_release_manager(user):
            return False, f"{user.username} is not in the '{Role.APPROVERS.value}' group"
        for env in release.environments.all():
            if not access.can(user, env, Capability.APPROVE):
                return False, (f"{user.username} has {access.access_level(user, env).label} access to {env.name} "
                               "and cannot approve releases that target it")
        if for_vote and release.approvals.filter(round=release.approval_round, approver=user).exists():
            return False, f"{user.username} has already voted on this release in this approval round"
        return True, ""

    def candidates(self, release):
        """The active people who are meant to approve the release (named, or the release managers), that the
        policy lets approve it: those it notifies and whose number bounds the quorum. (Administrators may
        approve too, but are not counted on or notified unless named or release managers.)"""
        users = get_user_model().objects.filter(is_active=True).exclude(pk=release.created_by_id)
        if release.required_approvers.exists() or release.required_roles.exists():
            users = users.filter(Q(pk__in=release.required_approvers.all()) | Q(groups__in=release.required_roles.all()))
        else:
            users = users.filter(groups__name=Role.APPROVERS.value)
        return [u for u in users.distinct().order_by("username")
                if self.eligibility(release, u, for_vote=False)[0]]

    def requirement(self, release):
        return Requirement(quorum=release.effective_quorum())

    def tally(self, release):
        return tally(round_votes(release, release.approvals), self.requirement(release))

    def still_valid(self, release):
        """(ok, reason): do the current round's approvals still meet the requirement, counting only voters who
        are still active and eligible? (A redeploy rests on them.)"""
        votes = [(approver, decision) for approver, decision in round_votes(release, release.approvals)
                 if approver.is_active and self.eligibility(release, approver, for_vote=False)[0]]
        result = tally(votes, self.requirement(release))
        if result.satisfied:
            return True, ""
        return False, "the release's approvals no longer hold: " + "; ".join(result.missing or result.rejected_by)


POLICY = ReleasePolicy()
