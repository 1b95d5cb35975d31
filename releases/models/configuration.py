"""Environment configuration (typed, validated by ``releases.configschema``) as immutable versions; a release's
pin of the configuration it was tested with; the configuration differences a deployment met; secret references
with their rotation policy.

A ``ConfigVersion`` is never changed or deleted once written: ``save`` of a stored row and ``delete`` raise, the
queryset's ``update`` and ``delete`` raise, and the database refuses UPDATE (and on PostgreSQL DELETE) through
triggers (migration 0007), as for the audit trail.
"""
from django.conf import settings
from django.db import models

from .deployments import Deployment
from .environments import Environment
from .releases import Release


class ImmutableVersion(Exception):
    """A configuration version is written once and never changed or deleted."""


class ConfigVersionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableVersion("configuration versions are immutable: save a new version instead")

    def delete(self):
        raise ImmutableVersion("configuration versions are never deleted")


class ConfigVersion(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="config_versions")
    number = models.PositiveIntegerField()
    document = models.JSONField(help_text="The validated configuration (secret references only, never values).")
    comment = models.CharField(max_length=300, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    changes = models.JSONField(default=list, blank=True,
                               help_text="The diff to the previous version: [{path, kind, before, after}].")

    objects = ConfigVersionQuerySet.as_manager()

    class Meta:
        ordering = ["environment__position", "-number"]
        constraints = [models.UniqueConstraint(fields=["environment", "number"], name="uniq_env_config_version")]
        get_latest_by = "number"

    def __str__(self):
        return f"{self.environment.name} configuration v{self.number}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ImmutableVersion("configuration versions are immutable: save a new version instead")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableVersion("configuration versions are never deleted")


class ConfigPolicy(models.Model):
    """How an environment treats the configuration a release was tested with."""

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="config_policy")
    require_pinned_match = models.BooleanField(
        default=False, help_text="Refuse a deployment whose release's pinned configuration differs from this "
                                 "environment's on a must-match key (security.*, features.*.enabled).")


class ReleaseConfigPin(models.Model):
    """The configuration version a release was tested with (on staging), pinned for its promotion."""

    release = models.OneToOneField(Release, on_delete=models.CASCADE, related_name="config_pin")
    version = models.ForeignKey(ConfigVersion, on_delete=models.PROTECT, related_name="pins")
    pinned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    pinned_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.release.version} pinned to {self.version}"


class DeploymentConfigDiff(models.Model):
    """What configuration a deployment met: its release's pinned version against the target's current one."""

    deployment = models.OneToOneField(Deployment, on_delete=models.CASCADE, related_name="config_diff")
    pinned = models.ForeignKey(ConfigVersion, null=True, on_delete=models.PROTECT, related_name="+")
    current = models.ForeignKey(ConfigVersion, null=True, on_delete=models.PROTECT, related_name="+")
    changes = models.JSONField(default=list, blank=True)
    must_match = models.JSONField(default=list, blank=True, help_text="The must-match keys among the changes.")
    recorded_at = models.DateTimeField(auto_now_add=True)


class SecretBackend(models.TextChoices):
    VAULT = "vault", "Vault (KV v2)"
    ENV = "env", "Environment variable of the worker"


class SecretReference(models.Model):
    """A secret the configuration points at (never its value), with the seed's rotation policy."""

    name = models.SlugField(max_length=80, unique=True)
    reference = models.CharField(max_length=300, unique=True, help_text="vault://path#key or env://NAME")
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="secret_references")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", help_text="Notified when rotation is due.")
    description = models.CharField(max_length=300, blank=True)
    rotation_automatic = models.BooleanField(default=True)
    rotation_frequency_days = models.PositiveIntegerField(default=30)
    grace_period_days = models.PositiveIntegerField(default=7)
    last_rotated_at = models.DateTimeField(null=True, blank=True,
                                           help_text="For Vault: the current version's created_time.")
    backend_version = models.PositiveIntegerField(null=True, blank=True, editable=False)
    backend_metadata = models.JSONField(default=dict, blank=True, editable=False,
                                        help_text="Vault's custom metadata of the secret (never its value).")
    checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    check_error = models.CharField(max_length=300, blank=True, editable=False)
    notified_state = models.CharField(max_length=20, blank=True, editable=False,
                                      help_text="The rotation state its owner was last told of.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def backend(self):
        return SecretBackend.VAULT if self.reference.startswith("vault://") else SecretBackend.ENV
