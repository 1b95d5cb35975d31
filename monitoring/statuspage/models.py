"""Status page state: components in groups with their status history, incidents, scheduled maintenance,
subscribers and the per-environment incident policy. Transitions change state only."""
from django.conf import settings
from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from . import status as st
from . import texts


class ComponentStatus(models.TextChoices):
    OPERATIONAL = st.OPERATIONAL, "Operational"
    DEGRADED_PERFORMANCE = st.DEGRADED, "Degraded performance"
    PARTIAL_OUTAGE = st.PARTIAL, "Partial outage"
    MAJOR_OUTAGE = st.MAJOR, "Major outage"
    UNDER_MAINTENANCE = st.MAINTENANCE, "Under maintenance"


class ComponentGroup(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[texts.validate])
    description = models.TextField(blank=True, validators=[texts.validate])
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.name


class Component(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[texts.validate])
    description = models.TextField(blank=True, validators=[texts.validate])
    group = models.ForeignKey(ComponentGroup, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="components")
    position = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=24, choices=ComponentStatus.choices, default=ComponentStatus.OPERATIONAL,
                              editable=False, help_text="Changed through the services, which keep the history.")
    showcase = models.BooleanField(default=True, help_text="Show the uptime bar on the public page.")
    only_show_if_degraded = models.BooleanField(default=False)
    environments = models.ManyToManyField(
        "releases.Environment", blank=True, related_name="status_components",
        help_text="Deployments to these environments affect this component (incident drafts on failure).",
    )
    start_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["group__position", "position", "name"]

    def __str__(self):
        return self.name


class ComponentStatusChange(models.Model):
    """Every status a component has been in: the source of uptime bars and percentages."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(max_length=24, choices=ComponentStatus.choices, blank=True)
    new_status = models.CharField(max_length=24, choices=ComponentStatus.choices)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    incident = models.ForeignKey("Incident", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="status_changes")
    maintenance = models.ForeignKey("Maintenance", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="status_changes")

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.component}: {self.old_status or '—'} → {self.new_status} at {self.at:%Y-%m-%d %H:%M}"


# --- incidents ----------------------------------------------------------------------------------------
class IncidentStatus(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    POSTMORTEM = "postmortem", "Postmortem"


class Impact(models.TextChoices):
    NONE = "none", "None"
    MINOR = "minor", "Minor"
    MAJOR = "major", "Major"
    CRITICAL = "critical", "Critical"


UNRESOLVED = [IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING]


class IncidentQuerySet(models.QuerySet):
    def published(self):
        return self.filter(published_at__isnull=False)

    def unresolved(self):
        return self.filter(status__in=UNRESOLVED)


class Incident(ConcurrentTransitionMixin, models.Model):
    name = models.CharField(max_length=200, validators=[texts.validate])
    status = FSMField(default=IncidentStatus.INVESTIGATING, choices=IncidentStatus.choices, protected=True)
    impact = models.CharField(max_length=10, choices=Impact.choices, default=Impact.MINOR)
    components = models.ManyToManyField(Component, through="AffectedComponent", blank=True,
                                        related_name="incidents")
    published_at = models.DateTimeField(null=True, blank=True, editable=False,
                                        help_text="Drafts (not published) never appear on the public page.")
    started_at = models.DateTimeField(default=timezone.now)
    identified_at = models.DateTimeField(null=True, blank=True, editable=False)
    monitoring_at = models.DateTimeField(null=True, blank=True, editable=False)
    resolved_at = models.DateTimeField(null=True, blank=True, editable=False)
    postmortem = models.TextField(blank=True, validators=[texts.validate])
    postmortem_published_at = models.DateTimeField(null=True, blank=True, editable=False)
    environment = models.ForeignKey("releases.Environment", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="status_incidents",
                                    help_text="Set when the deployment engine opened the incident.")
    internal_notes = models.TextField(blank=True, editable=False,
                                      help_text="Engineering detail for operators (the deployment's failure); never "
                                                "public.")
    proposed_components = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="{component id: status} the engine proposes for a draft: set only when an operator confirms "
                  "them on publishing.")
    deployment = models.ForeignKey("releases.Deployment", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="incidents",
                                   help_text="The deployment that caused it (DORA's change failure rate counts it).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return self.name

    @property
    def is_published(self):
        return self.published_at is not None

    @property
    def is_resolved(self):
        return self.status not in UNRESOLVED

    # --- transitions: state only ----------------------------------------------------------------------
    @transition(field=status, source=IncidentStatus.INVESTIGATING, target=IncidentStatus.IDENTIFIED,
                custom={"label": "Identified"})
    def identify(self, by=None, **kwargs):
        self.identified_at = timezone.now()

    @transition(field=status, source=[IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED],
                target=IncidentStatus.MONITORING, custom={"label": "Monitoring a fix"})
    def monitor(self, by=None, **kwargs):
        self.monitoring_at = timezone.now()

    @transition(field=status, source=UNRESOLVED, target=IncidentStatus.RESOLVED, custom={"label": "Resolve"})
    def resolve(self, by=None, **kwargs):
        self.resolved_at = timezone.now()

    @transition(field=status, source=IncidentStatus.RESOLVED, target=IncidentStatus.POSTMORTEM,
                custom={"label": "Publish postmortem"})
    def publish_postmortem(self, by=None, **kwargs):
        self.postmortem_published_at = timezone.now()


class AffectedComponent(models.Model):
    """A component an incident affects, and the status the incident holds it in while unresolved."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected")
    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=24, choices=ComponentStatus.choices, default=ComponentStatus.PARTIAL_OUTAGE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "component"], name="uniq_incident_component")]

    def __str__(self):
        return f"{self.component}: {self.status}"


class Update(models.Model):
    """A public update: body, time and the component status changes it made."""

    status = models.CharField(max_length=20)
    body = models.TextField(validators=[texts.validate])
    affected_components = models.JSONField(
        default=list, blank=True, help_text='[{"code", "name", "old_status", "new_status"}]')
    created_at = models.DateTimeField(default=timezone.now)
    display_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        abstract = True
        ordering = ["-display_at", "-id"]


class IncidentUpdate(Update):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")

    class Meta(Update.Meta):
        pass

    def __str__(self):
        return f"{self.incident}: {self.status}"


# --- scheduled maintenance ------------------------------------------------------------------------------
class MaintenanceStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    VERIFYING = "verifying", "Verifying"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"  # withdrawn before it started: no longer on the public page


ACTIVE_MAINTENANCE = [MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.VERIFYING]


class Maintenance(ConcurrentTransitionMixin, models.Model):
    name = models.CharField(max_length=200, validators=[texts.validate])
    status = FSMField(default=MaintenanceStatus.SCHEDULED, choices=MaintenanceStatus.choices, protected=True)
    body = models.TextField(help_text="What will happen and what users will notice.", validators=[texts.validate])
    components = models.ManyToManyField(Component, blank=True, related_name="maintenances")
    scheduled_for = models.DateTimeField()
    scheduled_until = models.DateTimeField()
    auto_start = models.BooleanField(default=True, help_text="Start automatically at the scheduled time.")
    auto_complete = models.BooleanField(default=True, help_text="Complete automatically at the scheduled end.")
    remind_before = models.DurationField(
        null=True, blank=True, help_text="Remind subscribers this long before the start (e.g. 01:00:00).")
    reminded_at = models.DateTimeField(null=True, blank=True, editable=False)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    verifying_at = models.DateTimeField(null=True, blank=True, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-scheduled_for", "-id"]
        verbose_name_plural = "maintenances"

    def __str__(self):
        return self.name

    @transition(field=status, source=MaintenanceStatus.SCHEDULED, target=MaintenanceStatus.IN_PROGRESS,
                custom={"label": "Start"})
    def start(self, by=None, **kwargs):
        self.started_at = timezone.now()

    @transition(field=status, source=MaintenanceStatus.IN_PROGRESS, target=MaintenanceStatus.VERIFYING,
                custom={"label": "Verify"})
    def verify(self, by=None, **kwargs):
        self.verifying_at = timezone.now()

    @transition(field=status, source=ACTIVE_MAINTENANCE, target=MaintenanceStatus.COMPLETED,
                custom={"label": "Complete"})
    def complete(self, by=None, **kwargs):
        self.completed_at = timezone.now()

    @transition(field=status, source=MaintenanceStatus.SCHEDULED, target=MaintenanceStatus.CANCELLED,
                custom={"label": "Cancel"})
    def cancel(self, by=None, **kwargs):
        pass


class MaintenanceUpdate(Update):
    maintenance = models.ForeignKey(Maintenance, on_delete=models.CASCADE, related_name="updates")

    class Meta(Update.Meta):
        pass

    def __str__(self):
        return f"{self.maintenance}: {self.status}"


# --- the deployment engine's link ---------------------------------------------------------------------------
class Policy(models.TextChoices):
    DRAFT = "draft", "Open a draft for an operator to publish"
    PUBLISH = "publish", "Publish an incident at once"
    NONE = "none", "Do nothing"


class IncidentPolicy(models.Model):
    """What a failed deployment or an automatic rollback in an environment does on the status page."""

    environment = models.OneToOneField("releases.Environment", on_delete=models.CASCADE,
                                       related_name="status_incident_policy")
    policy = models.CharField(max_length=10, choices=Policy.choices, default=Policy.DRAFT)

    class Meta:
        verbose_name_plural = "incident policies"

    def __str__(self):
        return f"{self.environment}: {self.policy}"


# --- subscribers --------------------------------------------------------------------------------------------
class SubscriberKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class Subscriber(models.Model):
    kind = models.CharField(max_length=10, choices=SubscriberKind.choices)
    email = models.EmailField(blank=True)
    webhook_url = models.URLField(blank=True, max_length=500)
    components = models.ManyToManyField(Component, blank=True, related_name="subscribers",
                                        help_text="Only these components (none: everything).")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["email"], condition=models.Q(kind="email"), name="uniq_subscriber_email"),
            models.CheckConstraint(
                condition=(models.Q(kind="email") & ~models.Q(email="")) | (models.Q(kind="webhook") & ~models.Q(webhook_url="")),
                name="subscriber_has_address"),
        ]

    def __str__(self):
        return self.email or self.webhook_url

    @property
    def is_active(self):
        return self.confirmed_at is not None and self.unsubscribed_at is None


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One notification to one subscriber; the unique event key makes redelivered tasks harmless."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=80, help_text="e.g. incident-12-update-40")
    subject = models.CharField(max_length=250)
    body = models.TextField()
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["subscriber", "event"], name="uniq_delivery_event")]

    def __str__(self):
        return f"{self.event} → {self.subscriber}"


class PublishRequest(models.Model):
    """What the static site has yet to show (``publishing.publish_later``): one row a changed incident or
    maintenance (``incident:12``), ``all`` for a change every page may show, and ``queued`` while a publish task
    waits in the queue, so that a burst of changes makes one publish."""

    key = models.CharField(max_length=40, unique=True)
    requested_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.key
