"""Environments and the access matrix: which role group holds which access level in each environment."""
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models

from pmrelease.roles import AccessLevel


class DeploymentTier(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    TESTING = "testing", "Testing"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


class Attachment(models.TextChoices):
    NONE = "", "—"
    WORKSTATION = "workstation", "local copy of"
    TESTING = "testing", "test bed of"
    MIRROR = "mirror", "mirror of"


class Environment(models.Model):
    name = models.SlugField(max_length=40, unique=True, help_text="Short name used in APIs and keys, e.g. 'staging'.")
    display_name = models.CharField(max_length=80)
    purpose = models.TextField(blank=True)
    tier = models.CharField(max_length=20, choices=DeploymentTier.choices)
    position = models.PositiveSmallIntegerField(default=0, help_text="Display order.")
    promotes_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="promoted_from",
        help_text="Next environment on the promotion path (development → staging → production).",
    )
    attached_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="attachments",
        help_text="An environment beside the promotion path hangs off this one (qa off staging, dr mirrors production).",
    )
    attachment = models.CharField(max_length=20, choices=Attachment.choices, blank=True, default="")
    infrastructure = models.JSONField(
        default=dict, blank=True,
        help_text='e.g. {"vps": "4 vCPUs, 8GB RAM", "database": "NileDB staging instance", '
                  '"storage": "Cloud storage with CDN", "networking": "Restricted external access"}',
    )
    data_source = models.CharField(max_length=200, blank=True)
    data_retention = models.CharField(max_length=100, blank=True)
    data_backup = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    bake_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Minutes the rollback triggers keep watching a deployment after it "
                                         "succeeded (empty: 30 for production, 0 elsewhere).")
    # What runs here now, kept by the deployment engine (a succeeded deployment, or a rollback restoring the
    # previous version). Not editable: it records what happened.
    current_release = models.ForeignKey("releases.Release", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="running_in", editable=False)
    current_version = models.CharField(max_length=64, blank=True, editable=False)
    current_since = models.DateTimeField(null=True, blank=True, editable=False)
    current_deployment = models.ForeignKey("releases.Deployment", null=True, blank=True, on_delete=models.SET_NULL,
                                           related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.display_name or self.name

    @property
    def is_production(self):
        return self.tier == DeploymentTier.PRODUCTION

    @property
    def bake_seconds(self):
        minutes = self.bake_minutes if self.bake_minutes is not None else (30 if self.is_production else 0)
        return minutes * 60

    def clean(self):
        errors = {}
        seen = {self.pk}
        nxt = self.promotes_to
        while nxt is not None:
            if nxt.pk in seen:
                errors["promotes_to"] = "the promotion path would loop back to this environment"
                break
            seen.add(nxt.pk)
            nxt = nxt.promotes_to
        if self.attached_to_id and self.attached_to_id == self.pk:
            errors["attached_to"] = "an environment cannot hang off itself"
        if self.attached_to_id and not self.attachment:
            errors["attachment"] = "say how this environment relates to the one it hangs off"
        if not isinstance(self.infrastructure, dict):
            errors["infrastructure"] = "infrastructure must be a JSON object of name → specification"
        if errors:
            raise ValidationError(errors)

    @classmethod
    def promotion_path(cls):
        """The environments on the promotion path, in order (roots are those nothing promotes to)."""
        envs = list(cls.objects.filter(is_active=True).select_related("promotes_to"))
        targets = {e.promotes_to_id for e in envs if e.promotes_to_id}
        path = []
        for root in (e for e in envs if e.promotes_to_id and e.pk not in targets):
            node = root
            while node is not None and node not in path:
                path.append(node)
                node = node.promotes_to
        return path


class EnvironmentAccess(models.Model):
    """Access level a role group holds in one environment (the seed's access matrix)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="access")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="environment_access")
    level = models.PositiveSmallIntegerField(choices=AccessLevel.choices, default=AccessLevel.NONE)
    note = models.CharField(max_length=200, blank=True, help_text="e.g. 'Full testing access'")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["environment", "group"], name="uniq_env_group_access")]
        ordering = ["environment__position", "group__name"]
        verbose_name_plural = "environment access"

    def __str__(self):
        return f"{self.group.name} on {self.environment.name}: {self.get_level_display()}"
