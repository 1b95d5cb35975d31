"""Approval rounds: the one mechanism releases, change requests and flag changes approve with.

A subject (a release, a change request) has an ``approval_round`` counter and a table of votes made from
``AbstractVote``. Votes belong to a round; only the current round's votes count. Any edit of what was
approved withdraws the round (``withdraw``): its votes stay in the table as history but stop counting, a new
round opens, and the audit trail says what changed and whose votes were withdrawn. Who may vote and how many
approvals are needed is the subject's **policy** (``Policy``): the releases app supplies one for releases,
the changes app one for change requests. The arithmetic (``tally``) is pure.
"""
import abc
from dataclasses import dataclass, field

from django.conf import settings
from django.db import models
from django.utils import timezone

from . import audit


class Decision(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class AbstractVote(models.Model):
    """One person's decision on a subject in one approval round. Concrete models add the subject's FK."""

    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    round = models.PositiveIntegerField()
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["created_at"]


# --- requirements and their arithmetic (pure) ----------------------------------------------------------------
@dataclass(frozen=True)
class Requirement:
    """What a round needs: ``quorum`` approvals in all, of which ``per_role`` asks some from members of named
    roles (e.g. {"operations": 1, "product": 1} for a production change)."""

    quorum: int
    per_role: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Tally:
    approvals: int
    needed: int
    missing: tuple = ()  # what is still missing, as sentences
    rejected_by: tuple = ()

    @property
    def satisfied(self):
        return not self.missing and not self.rejected_by


def tally(votes, requirement, roles_of=lambda approver: frozenset()):
    """Count a round's ``votes`` ([(approver, decision)]) against ``requirement``. ``roles_of(approver)`` gives
    the role names a vote counts for (one approval may count for several roles, as in a CAB)."""
    approvers = [a for a, decision in votes if decision == Decision.APPROVED]
    rejected = tuple(str(a) for a, decision in votes if decision == Decision.REJECTED)
    missing = []
    if len(approvers) < requirement.quorum:
        missing.append(f"{len(approvers)} of {requirement.quorum} required approvals")
    for role, needed in sorted(requirement.per_role.items()):
        have = sum(1 for a in approvers if role in roles_of(a))
        if have < needed:
            missing.append(f"{have} of {needed} approvals from {role}")
    return Tally(len(approvers), requirement.quorum, tuple(missing), rejected)


class Policy(abc.ABC):
    """Who may decide on a subject, and what a round needs. Apps subclass it for their subjects."""

    @abc.abstractmethod
    def eligibility(self, subject, user, *, for_vote=True):
        """(eligible, reason why not)."""

    @abc.abstractmethod
    def requirement(self, subject):
        """The ``Requirement`` of the subject's current round."""

    def roles_of(self, user):
        from .roles import user_roles

        return user_roles(user)


# --- rounds ----------------------------------------------------------------------------------------------------
def round_votes(subject, votes):
    """The current round's votes of ``subject`` from its ``votes`` manager: [(approver, decision)] (from the
    votes prefetched with the subject when they were, with their approvers)."""
    prefetched = votes.all()
    if prefetched._result_cache is not None:
        return [(v.approver, v.decision) for v in prefetched if v.round == subject.approval_round]
    return [(v.approver, v.decision) for v in votes.filter(round=subject.approval_round).select_related("approver")]


def withdraw(subject, *, votes, by, changed, reason=""):
    """An edit changed what was approved: the current round's votes stop counting and a new round opens.
    ``changed`` names what changed (recorded). Call inside the edit's transaction, on a locked subject; it
    saves ``approval_round`` itself. Returns the votes withdrawn (nothing happens when there were none)."""
    withdrawn = list(votes.filter(round=subject.approval_round).select_related("approver"))
    if not withdrawn:
        return []
    old = subject.approval_round
    subject.approval_round = old + 1
    type(subject).objects.filter(pk=subject.pk).update(approval_round=subject.approval_round)
    audit.record(
        action=f"{subject._meta.model_name}.approvals_withdrawn", obj=subject, by=by,
        reason=reason or "what was approved changed: the votes no longer count",
        before={"round": old, "votes": [[v.approver.get_username(), v.decision] for v in withdrawn]},
        after={"round": subject.approval_round, "changed": sorted(changed)},
    )
    return withdrawn
