"""Alert rules per environment (the seed's AlertRule), their current state and every change of it."""
from django.db import models
from django.utils import timezone


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class AlertState(models.TextChoices):
    INACTIVE = "inactive", "Inactive"
    PENDING = "pending", "Pending (held for its 'for' duration)"
    FIRING = "firing", "Firing"


class AlertRule(models.Model):
    """``condition`` is PromQL: the alert fires while it returns a non-empty result (held for ``for_seconds``
    first, as Prometheus' ``for``); notifications go to ``channels`` (and the channels subscribed to
    alert.firing / alert.resolved), never more often than ``cooldown`` minutes."""

    environment = models.ForeignKey("releases.Environment", on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    condition = models.TextField(help_text='PromQL, e.g. rate(http_requests_total{status=~"5.."}[5m]) > 0.05')
    for_seconds = models.PositiveIntegerField(default=0, help_text="Seconds the condition must hold before the "
                                                                   "alert fires (Prometheus' 'for'); 0: at once.")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    channels = models.ManyToManyField("pmrelease.Channel", blank=True, related_name="alert_rules")
    cooldown = models.PositiveIntegerField(default=5, help_text="Minutes between two notifications of this rule.")
    enabled = models.BooleanField(default=True)
    # state (written by the evaluation only)
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.INACTIVE, editable=False)
    state_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    last_result = models.JSONField(default=list, blank=True, editable=False,
                                   help_text="the series the condition returned at the last evaluation")

    class Meta:
        ordering = ["environment__position", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="alert_rule_unique_name")]
        indexes = [models.Index(fields=["enabled", "state"])]

    def __str__(self):
        return f"{self.name} ({self.environment.name})"


class ActiveAlert(AlertRule):
    """The rules that are firing or pending: the admin's list of active alerts."""

    class Meta:
        proxy = True
        verbose_name = "active alert"


class AlertEvent(models.Model):
    """One change of a rule's state (pending, firing, resolved, cleared), with what the condition returned and
    whether a notification went out (or the cooldown held it back)."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    change = models.CharField(max_length=10)
    from_state = models.CharField(max_length=10)
    to_state = models.CharField(max_length=10)
    notified = models.BooleanField(default=False)
    detail = models.TextField(blank=True)
    series = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["rule", "-at"])]

    def __str__(self):
        return f"{self.rule.name}: {self.change} at {self.at:%Y-%m-%d %H:%M:%S}"
