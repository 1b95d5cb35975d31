"""Releases with their plans (prerequisites, risk, rollback, communication, testing), approvals and the
release-note items."""
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from pmrelease.approvals import AbstractVote, Decision

from .. import risk, versioning
from .environments import Environment


class ReleaseType(models.TextChoices):
    MAJOR = "major", "Major"
    MINOR = "minor", "Minor"
    PATCH = "patch", "Patch"
    HOTFIX = "hotfix", "Hotfix"


class ReleaseStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    APPROVED = "approved", "Approved"
    DEPLOYING = "deploying", "Deploying"
    DEPLOYED = "deployed", "Deployed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FAILED = "failed", "Failed"


class Release(ConcurrentTransitionMixin, models.Model):
    version = models.CharField(max_length=64, unique=True, help_text="Semantic version, e.g. 2.1.0.")
    type = models.CharField(max_length=10, choices=ReleaseType.choices)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    environments = models.ManyToManyField(Environment, related_name="releases", blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    scheduled_until = models.DateTimeField(null=True, blank=True)
    required_approvers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="releases_to_approve",
        help_text="People who may approve; with none named (and no roles) the 'approvers' group may.",
    )
    required_roles = models.ManyToManyField(
        Group, blank=True, related_name="releases_to_approve", help_text="Role groups whose members may approve.",
    )
    quorum = models.PositiveSmallIntegerField(default=1, help_text="Approvals needed.")
    approval_round = models.PositiveIntegerField(default=1, editable=False)
    status = FSMField(default=ReleaseStatus.PLANNED, choices=ReleaseStatus.choices, protected=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="releases_created",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    approved_at = models.DateTimeField(null=True, blank=True, editable=False)
    deployed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        # the list's ordering and the admin's date hierarchy (issue 18: lists stay as fast with years of history)
        indexes = [models.Index(fields=["-created_at"], name="release_created_idx"),
                   models.Index(fields=["scheduled_for"], name="release_scheduled_idx")]

    def __str__(self):
        return f"{self.version} {self.title}"

    def clean(self):
        errors = {}
        try:
            versioning.parse(self.version)
        except versioning.InvalidVersion as exc:
            errors["version"] = str(exc)
        if self.quorum < 1:
            errors["quorum"] = "a release needs at least one approval"
        if self.scheduled_for and self.scheduled_until and self.scheduled_until <= self.scheduled_for:
            errors["scheduled_until"] = "the schedule must end after it starts"
        if errors:
            raise ValidationError(errors)

    # --- reads used by services (no I/O beyond this object's rows) ------------------------------------
    def plan_blockers(self):
        """Why the plan is not ready for approval (empty when it is)."""
        reasons = []
        for p in self.prerequisites.exclude(status=PrerequisiteStatus.COMPLETED):
            reasons.append(f"prerequisite '{p.description}' ({p.type}) is {p.status}")
        if not self.rollback_steps.exists():
            reasons.append("the rollback plan is missing: add at least one rollback step")
        return reasons

    def current_approvals(self):
        return self.approvals.filter(round=self.approval_round, decision=ApprovalDecision.APPROVED)

    def effective_quorum(self):
        """The quorum, raised by the risk matrix (high and critical risk need two approvals)."""
        assessment = getattr(self, "risk_assessment", None) if self.pk else None
        if assessment is None:
            return self.quorum
        return risk.required_quorum(assessment.level, self.quorum)

    # --- transitions: state only ------------------------------------------------------------------------
    # A release's status describes the release as a whole: deploying while one of its deployments runs,
    # deployed while some environment runs it, failed or rolled back only when its last deployment ended so
    # and no environment runs it any more (each deployment keeps its own outcome).
    @transition(field=status, source=ReleaseStatus.PLANNED, target=ReleaseStatus.APPROVED,
                custom={"label": "Approve"})
    def approve(self, by=None, **kwargs):
        self.approved_at = timezone.now()

    @transition(field=status, source=[ReleaseStatus.PLANNED, ReleaseStatus.APPROVED], target=ReleaseStatus.PLANNED,
                custom={"label": "Reject"})
    def reject(self, by=None, **kwargs):
        self.approval_round += 1
        self.approved_at = None

    @transition(field=status, source=[ReleaseStatus.APPROVED, ReleaseStatus.DEPLOYED, ReleaseStatus.FAILED],
                target=ReleaseStatus.DEPLOYING, custom={"label": "Start deployment"})
    def deploy(self, by=None, **kwargs):
        """One of the release's deployments started (or a failed one is retried)."""

    @transition(field=status, source=ReleaseStatus.DEPLOYING, target=ReleaseStatus.DEPLOYED,
                custom={"label": "Deployed"})
    def complete(self, by=None, **kwargs):
        self.deployed_at = timezone.now()

    @transition(field=status, source=ReleaseStatus.DEPLOYING, target=ReleaseStatus.FAILED,
                custom={"label": "Failed"})
    def fail(self, by=None, **kwargs):
        """Its last deployment failed and no environment runs it."""

    @transition(field=status, source=[ReleaseStatus.DEPLOYING, ReleaseStatus.DEPLOYED],
                target=ReleaseStatus.ROLLED_BACK, custom={"label": "Rolled back"})
    def rollback(self, by=None, **kwargs):
        """Its last deployment was rolled back and no environment runs it."""

    @transition(field=status, source=[ReleaseStatus.FAILED, ReleaseStatus.ROLLED_BACK], target=ReleaseStatus.APPROVED,
                custom={"label": "Redeploy"})
    def redeploy(self, by=None, **kwargs):
        """Deployable again under the same approvals (a flaky test, an environment problem fixed)."""


class NoteKind(models.TextChoices):
    FEATURE = "feature", "Feature"
    FIX = "fix", "Bug fix"
    IMPROVEMENT = "improvement", "Technical improvement"
    MIGRATION = "migration", "Migration"
    SECURITY = "security", "Security"


class ReleaseNoteItem(models.Model):
    """One line of the release notes (a feature, a fix, a migration note...), not a change request."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="note_items")
    kind = models.CharField(max_length=20, choices=NoteKind.choices)
    summary = models.CharField(max_length=300)
    reference = models.CharField(max_length=200, blank=True, help_text="Ticket, PR or commit.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return f"{self.kind}: {self.summary}"


# --- release plan ------------------------------------------------------------------------------------
class PrerequisiteType(models.TextChoices):
    DATABASE = "database", "Database"
    INFRASTRUCTURE = "infrastructure", "Infrastructure"
    THIRD_PARTY = "third_party", "Third party"
    COMPLIANCE = "compliance", "Compliance"


class PrerequisiteStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class Prerequisite(models.Model):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="prerequisites")
    type = models.CharField(max_length=20, choices=PrerequisiteType.choices)
    description = models.CharField(max_length=300)
    status = models.CharField(max_length=10, choices=PrerequisiteStatus.choices, default=PrerequisiteStatus.PENDING)
    owner = models.CharField(max_length=120)
    deadline = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["deadline", "id"]

    def __str__(self):
        return f"{self.description} ({self.status})"


class Level(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Likelihood(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class RiskAssessment(models.Model):
    release = models.OneToOneField(Release, on_delete=models.CASCADE, related_name="risk_assessment")
    impact = models.CharField(max_length=10, choices=Level.choices)
    likelihood = models.CharField(max_length=10, choices=Likelihood.choices)
    level = models.CharField(max_length=10, choices=Level.choices, editable=False)
    mitigation = models.TextField(blank=True, help_text="One measure per line.")
    contingency = models.TextField(blank=True, help_text="One measure per line.")

    def __str__(self):
        return f"{self.level} risk ({self.impact} impact × {self.likelihood} likelihood)"

    def save(self, *args, **kwargs):
        self.level = risk.risk_level(self.impact, self.likelihood)
        super().save(*args, **kwargs)

    @property
    def mitigation_items(self):
        return [line.strip() for line in self.mitigation.splitlines() if line.strip()]

    @property
    def contingency_items(self):
        return [line.strip() for line in self.contingency.splitlines() if line.strip()]


class RollbackPlan(models.Model):
    release = models.OneToOneField(Release, on_delete=models.CASCADE, related_name="rollback_plan")
    prerequisites = models.TextField(blank=True, help_text="What must hold before rolling back, one per line.")
    validation = models.TextField(blank=True, help_text="How to validate the rollback, one check per line.")
    communication = models.TextField(blank=True)

    def __str__(self):
        return f"Rollback plan for {self.release.version}"


class RollbackStrategyType(models.TextChoices):
    CODE = "code", "Code"
    DATABASE = "database", "Database"
    CONFIGURATION = "configuration", "Configuration"
    INFRASTRUCTURE = "infrastructure", "Infrastructure"


class RollbackMethod(models.TextChoices):
    IMMEDIATE = "immediate", "Immediate"
    GRADUAL = "gradual", "Gradual"
    FEATURE_FLAG = "feature_flag", "Feature flag"


class RollbackStrategy(models.Model):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="rollback_strategies")
    type = models.CharField(max_length=20, choices=RollbackStrategyType.choices)
    method = models.CharField(max_length=20, choices=RollbackMethod.choices)
    estimated_duration = models.PositiveIntegerField(help_text="Minutes.")
    risk = models.CharField(max_length=10, choices=Likelihood.choices)

    class Meta:
        verbose_name_plural = "rollback strategies"

    def __str__(self):
        return f"{self.type} rollback ({self.method})"


class OnFailure(models.TextChoices):
    STOP = "stop", "Stop"
    CONTINUE = "continue", "Continue"
    MANUAL_INTERVENTION = "manual_intervention", "Manual intervention"


class RollbackStep(models.Model):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="rollback_steps")
    order = models.PositiveSmallIntegerField()
    description = models.CharField(max_length=300)
    command = models.CharField(max_length=500, blank=True)
    verification = models.CharField(max_length=300)
    timeout = models.PositiveIntegerField(default=300, help_text="Seconds.")
    on_failure = models.CharField(max_length=20, choices=OnFailure.choices, default=OnFailure.STOP)

    class Meta:
        ordering = ["order"]
        constraints = [models.UniqueConstraint(fields=["release", "order"], name="uniq_rollback_step_order")]

    def __str__(self):
        return f"{self.order}. {self.description}"


class CommunicationPlan(models.Model):
    release = models.OneToOneField(Release, on_delete=models.CASCADE, related_name="communication_plan")
    internal = models.TextField(blank=True, help_text="Team notifications and updates.")
    customer = models.TextField(blank=True, help_text="Feature announcements and known issues.")
    stakeholders = models.TextField(blank=True, help_text="Progress reports and milestone notifications.")
    incident = models.TextField(blank=True, help_text="Issue notifications and resolution updates.")

    def __str__(self):
        return f"Communication plan for {self.release.version}"


class TestingRequirement(models.Model):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="testing_requirements")
    name = models.CharField(max_length=120)
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.PROTECT)
    suites = models.CharField(max_length=300, blank=True, help_text="Comma-separated suites, e.g. unit-tests, api-tests.")
    required = models.BooleanField(default=True)

    def __str__(self):
        return self.name


# --- approvals ---------------------------------------------------------------------------------------
ApprovalDecision = Decision


class ReleaseApproval(AbstractVote):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="approvals")

    class Meta(AbstractVote.Meta):
        constraints = [
            models.UniqueConstraint(fields=["release", "approver", "round"], name="uniq_release_vote_per_round"),
        ]

    def __str__(self):
        return f"{self.approver} {self.decision} {self.release.version} (round {self.round})"


class ApproverRole(models.Model):
    """A role an administrator allows to approve releases beside the approvers (release managers): up to a
    risk level, in the listed environments (none listed: any). Named approvers must be eligible this way."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="approver_roles")
    max_risk = models.CharField(max_length=10, choices=Level.choices, default=Level.MEDIUM,
                                help_text="The highest release risk this role may approve.")
    environments = models.ManyToManyField(Environment, blank=True, related_name="approver_roles",
                                          help_text="Where the role may approve (none: every environment).")
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["group__name"]

    def __str__(self):
        return f"{self.group.name} may approve up to {self.max_risk} risk"
