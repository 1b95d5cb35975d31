"""Change requests (the seed's ChangeRequest) through the seven-step workflow, the approval policy as data,
pre-approved templates, deployment windows and freezes. Transitions change state only."""
import datetime as dt

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from pmrelease.approvals import AbstractVote

from . import risk


class ChangeType(models.TextChoices):
    ENHANCEMENT = "enhancement", "Enhancement"
    BUG_FIX = "bug_fix", "Bug fix"
    SECURITY = "security", "Security"
    INFRASTRUCTURE = "infrastructure", "Infrastructure"


class ChangeClass(models.TextChoices):
    NORMAL = "normal", "Normal"
    STANDARD = "standard", "Standard (pre-approved template)"
    EMERGENCY = "emergency", "Emergency"
    FLAG_CHANGE = "flag_change", "Feature-flag change"


class Priority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Impact(models.TextChoices):
    NONE = "none", "None"
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    SYSTEM_WIDE = "system_wide", "System-wide"


class Likelihood(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class RiskLevel(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class ChangeStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    SCHEDULED = "scheduled", "Scheduled"
    IMPLEMENTING = "implementing", "Implementing"
    VALIDATING = "validating", "Validating"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


class CloseCode(models.TextChoices):
    SUCCESSFUL = "successful", "Successful"
    SUCCESSFUL_WITH_ISSUES = "successful_with_issues", "Successful with issues"
    UNSUCCESSFUL = "unsuccessful", "Unsuccessful"


BEFORE_IMPLEMENTING = [ChangeStatus.DRAFT, ChangeStatus.SUBMITTED, ChangeStatus.IN_REVIEW, ChangeStatus.APPROVED,
                       ChangeStatus.SCHEDULED]
OPEN = [*BEFORE_IMPLEMENTING, ChangeStatus.IMPLEMENTING, ChangeStatus.VALIDATING]


class ChangeTemplate(models.Model):
    """A pre-approved, versioned recipe for standard changes: a change made from it skips review."""

    name = models.CharField(max_length=120)
    version = models.PositiveIntegerField(default=1)
    type = models.CharField(max_length=20, choices=ChangeType.choices, default=ChangeType.ENHANCEMENT)
    description = models.TextField(blank=True)
    implementation_plan = models.TextField()
    rollback_plan = models.TextField()
    testing_plan = models.TextField()
    environments = models.ManyToManyField("releases.Environment", blank=True, related_name="change_templates",
                                          help_text="Where changes from this template may go (none: anywhere).")
    max_risk = models.CharField(max_length=10, choices=RiskLevel.choices, default=RiskLevel.LOW,
                                help_text="A change riskier than this cannot be standard.")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="change_template_version")]

    def __str__(self):
        return f"{self.name} v{self.version}"

    @property
    def is_approved(self):
        return self.approved_at is not None


class ChangeRequest(ConcurrentTransitionMixin, models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=20, choices=ChangeType.choices, default=ChangeType.ENHANCEMENT)
    change_class = models.CharField(max_length=20, choices=ChangeClass.choices, default=ChangeClass.NORMAL)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    impact = models.CharField(max_length=12, choices=Impact.choices, default=Impact.LOW)
    likelihood = models.CharField(max_length=10, choices=Likelihood.choices, default=Likelihood.LOW)
    risk = models.CharField(max_length=10, choices=RiskLevel.choices, default=RiskLevel.LOW, editable=False,
                            help_text="From impact × likelihood and the environments (raised, never lowered, by an "
                                      "approver's override).")
    risk_override = models.CharField(max_length=10, choices=RiskLevel.choices, blank=True, editable=False)
    risk_reasons = models.JSONField(default=list, blank=True, editable=False)
    environments = models.ManyToManyField("releases.Environment", related_name="change_requests")
    planned_start = models.DateTimeField(null=True, blank=True)
    duration = models.PositiveIntegerField(default=60, help_text="Minutes.")
    maintenance = models.BooleanField(default=False, help_text="Scheduling it announces a maintenance on the "
                                                                "status page for its window and environments.")
    implementation_plan = models.TextField(blank=True)
    rollback_plan = models.TextField(blank=True)
    testing_plan = models.TextField(blank=True)
    template = models.ForeignKey(ChangeTemplate, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="changes")
    status = FSMField(default=ChangeStatus.DRAFT, choices=ChangeStatus.choices, protected=True)
    approval_round = models.PositiveIntegerField(default=1, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="changes_requested", help_text="Empty: recorded by the system "
                                                                                 "(a rollback records itself).")
    approvers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="changes_to_approve",
                                       help_text="People who must approve besides the roles the policy names.")
    implementer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="changes_implemented")
    submitted_at = models.DateTimeField(null=True, blank=True, editable=False)
    approved_at = models.DateTimeField(null=True, blank=True, editable=False)
    implemented_at = models.DateTimeField(null=True, blank=True, editable=False)
    validated_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)
    close_code = models.CharField(max_length=30, choices=CloseCode.choices, blank=True, editable=False)
    close_notes = models.TextField(blank=True, editable=False)
    # emergency changes: the post-implementation review, then a retrospective approval
    pir_root_cause = models.TextField(blank=True, editable=False)
    pir_prevention = models.TextField(blank=True, editable=False)
    pir_reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", editable=False)
    pir_at = models.DateTimeField(null=True, blank=True, editable=False)
    retro_approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                          related_name="+", editable=False)
    retro_approved_at = models.DateTimeField(null=True, blank=True, editable=False)
    pir_reminded_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "planned_start"]), models.Index(fields=["-created_at", "-id"])]

    def __str__(self):
        return f"CHG-{self.pk}: {self.title}" if self.pk else self.title

    @property
    def planned_end(self):
        return self.planned_start + dt.timedelta(minutes=self.duration) if self.planned_start else None

    @property
    def is_emergency(self):
        return self.change_class == ChangeClass.EMERGENCY

    @property
    def needs_review(self):
        """An emergency change cannot close before its post-implementation review and retrospective approval."""
        return self.is_emergency and not (self.pir_at and self.retro_approved_at)

    def clean(self):
        if self.duration is not None and not 1 <= self.duration <= 7 * 24 * 60:
            raise ValidationError({"duration": "minutes from 1 to a week"})
        if self.risk_override and risk.rank(self.risk_override) < risk.rank(self.risk):
            raise ValidationError({"risk_override": "the risk may be raised, never lowered"})

    # --- transitions: state only --------------------------------------------------------------------
    @transition(field=status, source=ChangeStatus.DRAFT, target=ChangeStatus.SUBMITTED)
    def submit(self, by=None, **kwargs):
        self.submitted_at = timezone.now()

    @transition(field=status, source=ChangeStatus.SUBMITTED, target=ChangeStatus.IN_REVIEW)
    def review(self, by=None, **kwargs):
        """Technical review begins: the votes of the round are collected."""

    @transition(field=status, source=[ChangeStatus.SUBMITTED, ChangeStatus.IN_REVIEW], target=ChangeStatus.APPROVED)
    def approve(self, by=None, **kwargs):
        self.approved_at = timezone.now()

    @transition(field=status, source=[ChangeStatus.SUBMITTED, ChangeStatus.IN_REVIEW, ChangeStatus.APPROVED,
                                      ChangeStatus.SCHEDULED], target=ChangeStatus.DRAFT)
    def reject(self, by=None, **kwargs):
        self.approval_round += 1
        self.approved_at = None

    @transition(field=status, source=[ChangeStatus.APPROVED, ChangeStatus.SCHEDULED], target=ChangeStatus.IN_REVIEW)
    def reopen(self, by=None, **kwargs):
        """What was approved changed: back to review, under a new round."""
        self.approved_at = None

    @transition(field=status, source=ChangeStatus.APPROVED, target=ChangeStatus.SCHEDULED)
    def schedule(self, by=None, **kwargs):
        """A deployment window was assigned (``planned_start`` fits one)."""

    @transition(field=status, source=[ChangeStatus.APPROVED, ChangeStatus.SCHEDULED], target=ChangeStatus.IMPLEMENTING)
    def implement(self, by=None, **kwargs):
        self.implemented_at = timezone.now()

    @transition(field=status, source=ChangeStatus.IMPLEMENTING, target=ChangeStatus.VALIDATING)
    def validate(self, by=None, **kwargs):
        self.validated_at = timezone.now()

    @transition(field=status, source=ChangeStatus.VALIDATING, target=ChangeStatus.CLOSED)
    def close(self, by=None, **kwargs):
        self.closed_at = timezone.now()
        self.close_code = kwargs.get("close_code", CloseCode.SUCCESSFUL)
        self.close_notes = kwargs.get("notes", "")

    @transition(field=status, source=[ChangeStatus.IMPLEMENTING, ChangeStatus.VALIDATING], target=ChangeStatus.FAILED)
    def fail(self, by=None, **kwargs):
        self.closed_at = timezone.now()
        self.close_code = CloseCode.UNSUCCESSFUL
        self.close_notes = kwargs.get("notes", "") or kwargs.get("reason", "")

    @transition(field=status, source=BEFORE_IMPLEMENTING, target=ChangeStatus.CANCELLED)
    def cancel(self, by=None, **kwargs):
        self.closed_at = timezone.now()


class ChangeApproval(AbstractVote):
    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="approvals")

    class Meta(AbstractVote.Meta):
        constraints = [models.UniqueConstraint(fields=["change", "approver", "round"], name="change_vote_per_round")]

    def __str__(self):
        return f"{self.approver} {self.decision} CHG-{self.change_id} (round {self.round})"


class ChangeLink(models.Model):
    """What a change covers: a release, a deployment, a flag's state, a configuration version…"""

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="links")
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    object_id = models.CharField(max_length=64)
    target = GenericForeignKey("content_type", "object_id")
    label = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["change", "content_type", "object_id"], name="change_link_unique")]
        indexes = [models.Index(fields=["content_type", "object_id"])]

    def __str__(self):
        return self.label or f"{self.content_type.model} {self.object_id}"


class ApprovalRule(models.Model):
    """The approval policy, as data: changes matching the rule need ``quorum`` approvals from ``role``."""

    description = models.CharField(max_length=200)
    change_class = models.CharField(max_length=20, choices=ChangeClass.choices, blank=True,
                                    help_text="Empty: every class but standard (pre-approved).")
    change_type = models.CharField(max_length=20, choices=ChangeType.choices, blank=True, help_text="Empty: any.")
    min_risk = models.CharField(max_length=10, choices=RiskLevel.choices, default=RiskLevel.LOW)
    environment = models.ForeignKey("releases.Environment", null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="approval_rules", help_text="Empty: any environment.")
    production_only = models.BooleanField(default=False, help_text="Only changes touching a production-tier "
                                                                    "environment.")
    role = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="change_approval_rules")
    quorum = models.PositiveSmallIntegerField(default=1)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["role__name", "id"]

    def __str__(self):
        return f"{self.description}: {self.quorum} from {self.role.name}"


class ChangeWindow(models.Model):
    """A recurring deployment window of an environment, in a time zone."""

    environment = models.ForeignKey("releases.Environment", on_delete=models.CASCADE, related_name="change_windows")
    name = models.CharField(max_length=100)
    days = models.JSONField(default=list, help_text="Weekdays, Monday = 0: e.g. [1, 2, 3] for Tue–Thu.")
    start_time = models.TimeField()
    end_time = models.TimeField(help_text="At or before the start: the window runs past midnight.")
    timezone = models.CharField(max_length=64, default="UTC")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["environment__position", "name"]

    def __str__(self):
        return f"{self.environment.name}: {self.name}"


class ChangeFreeze(models.Model):
    """A period nothing is deployed (one-off, or recurring by an RFC 5545 rule), with a reason."""

    reason = models.CharField(max_length=200)
    environments = models.ManyToManyField("releases.Environment", blank=True, related_name="change_freezes",
                                          help_text="None: every environment that requires a change.")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    rule = models.CharField(max_length=300, blank=True, help_text='Recurring: e.g. "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=20".')
    rule_start = models.DateTimeField(null=True, blank=True, help_text="The rule's first occurrence (local time).")
    duration_minutes = models.PositiveIntegerField(default=0)
    timezone = models.CharField(max_length=64, default="UTC")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")

    class Meta:
        ordering = ["starts_at", "id"]

    def __str__(self):
        return self.reason


class EnvironmentChangePolicy(models.Model):
    """Whether deploying to an environment needs a covering change (default: production-tier ones)."""

    environment = models.OneToOneField("releases.Environment", on_delete=models.CASCADE, related_name="change_policy")
    requires_change = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "environment change policies"

    def __str__(self):
        return f"{self.environment.name}: {'change required' if self.requires_change else 'no change needed'}"
