"""Feature flags: flags with a state per environment, segments, gradual ramps, API keys, usage metrics.

Strategies, constraints and variants are stored in the Unleash client-API shape (JSON), validated by
``flags.engine.validation`` before they are saved, and compiled per environment into an engine snapshot
(``flags.snapshots``) that the evaluation APIs serve without touching the database.
"""
import datetime as dt
import hashlib
import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

KEY_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    "a flag key is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit",
)


class FlagType(models.TextChoices):
    RELEASE = "release", "Release"
    EXPERIMENT = "experiment", "Experiment"
    OPERATIONAL = "operational", "Operational"
    KILL_SWITCH = "kill-switch", "Kill switch"
    PERMISSION = "permission", "Permission"


# Expected lifetime per type (Unleash's defaults); None = long-lived. Past it, a flag is stale.
EXPECTED_LIFETIME = {
    FlagType.RELEASE: dt.timedelta(days=40),
    FlagType.EXPERIMENT: dt.timedelta(days=40),
    FlagType.OPERATIONAL: dt.timedelta(days=7),
    FlagType.KILL_SWITCH: None,
    FlagType.PERMISSION: None,
}


class Lifecycle(models.TextChoices):
    INITIAL = "initial", "Initial (being built)"
    LIVE = "live", "Live"
    COMPLETED = "completed", "Completed (ready for clean-up)"
    ARCHIVED = "archived", "Archived (not served)"


class RolloutKind(models.TextChoices):
    """The seed's rollout strategies, mapped onto Unleash strategies by ``flags.rollouts``."""

    IMMEDIATE = "immediate", "Immediate (on for everyone)"
    PERCENTAGE = "percentage", "Percentage (flexibleRollout)"
    USER_SEGMENT = "user_segment", "User segment (segments / user ids)"
    GRADUAL = "gradual", "Gradual (scheduled ramp)"
    CUSTOM = "custom", "Custom strategies"


class Segment(models.Model):
    """A reusable, named set of constraints referenced by strategies (``"segments": [id]``)."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    constraints = models.JSONField(default=list, blank=True)
    unleash = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="an imported segment's keys in their order and the fields the portal has no column for",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def as_unleash(self):
        """The segment as Unleash serves it; an imported one exactly as it was given (its keys, in order)."""
        values = {"id": self.pk, "name": self.name, "constraints": self.constraints}
        keys = (self.unleash or {}).get("keys")
        if keys is None:
            return values
        values["description"] = self.description
        extra = self.unleash.get("extra") or {}
        return {key: extra[key] if key in extra else values[key] for key in keys if key in extra or key in values}


class FeatureFlag(models.Model):
    key = models.CharField(max_length=100, unique=True, validators=[KEY_VALIDATOR])
    description = models.TextField(blank=True)
    type = models.CharField(max_length=20, choices=FlagType.choices, default=FlagType.RELEASE)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_flags"
    )
    tags = models.JSONField(default=list, blank=True, help_text='a list of strings, e.g. ["checkout", "team:web"]')
    lifecycle = models.CharField(max_length=20, choices=Lifecycle.choices, default=Lifecycle.INITIAL)
    impression_data = models.BooleanField(default=False)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
        help_text="dependency: this flag is only on when the parent is (one level only)",
    )
    parent_enabled = models.BooleanField(default=True, help_text="require the parent on (or off, when unticked)")
    parent_variants = models.JSONField(default=list, blank=True, help_text="require one of these parent variants")
    # What is served as the Unleash "dependencies": derived from the parent fields when they are edited here, or
    # an imported list kept exactly as given (several parents, a parent that does not exist, ...).
    dependencies = models.JSONField(default=list, blank=True, editable=False)
    # An imported flag's Unleash keys in their order and the fields the portal has no column for (project,
    # stale, ...): what the export needs to give the document back as it was imported. Empty: the portal's own.
    unleash = models.JSONField(default=dict, blank=True, editable=False)
    # The seed's per-flag monitoring. The alerts guard the flag's gradual ramps (flags.guards): the rollback watch
    # judges them every tick while a ramp runs (and through the environment's bake time after it completes).
    monitoring_metrics = models.JSONField(default=list, blank=True, help_text="metric names to watch")
    monitoring_alerts = models.JSONField(
        default=list, blank=True,
        help_text='guards of the gradual ramps: [{"metric", "operator", "threshold", "duration" (s), "cooldown" '
                  '(min), "no_data", "action": "pause_rollout" | "revert_rollout"}]')
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    stale_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return self.key

    @property
    def expected_lifetime(self):
        return EXPECTED_LIFETIME.get(self.type)

    def is_past_lifetime(self, now=None):
        lifetime = self.expected_lifetime
        return lifetime is not None and (now or timezone.now()) > self.created_at + lifetime


class FlagEnvironment(models.Model):
    """A flag's state in one environment: on/off, strategies (OR-ed) and flag-level variants."""

    flag = models.ForeignKey(FeatureFlag, on_delete=models.CASCADE, related_name="states")
    environment = models.ForeignKey("releases.Environment", on_delete=models.CASCADE, related_name="flag_states")
    enabled = models.BooleanField(default=False)
    rollout = models.CharField(max_length=20, choices=RolloutKind.choices, default=RolloutKind.IMMEDIATE)
    strategies = models.JSONField(default=list, blank=True)
    variants = models.JSONField(default=list, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flag", "environment"], name="flags_state_unique")]
        ordering = ["flag__key", "environment__position"]

    def __str__(self):
        return f"{self.flag.key} @ {self.environment.name}"

    def config(self):
        """The editable configuration (what copy/approval/audit compare)."""
        return {"enabled": self.enabled, "rollout": self.rollout, "strategies": self.strategies,
                "variants": self.variants}


class ConfigVersion(models.Model):
    """The version token of an environment's flag configuration (scope ``env:<id>``) or of the API keys
    (scope ``keys``).

    Bumped in the transaction of every change; processes compare it (through the cache) with the token of
    the snapshot they hold and rebuild when it differs.
    """

    scope = models.CharField(max_length=40, unique=True)
    token = models.CharField(max_length=32, default="")
    revision = models.BigIntegerField(default=0, help_text="incremented by every change (under the row's lock)")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.scope}: {self.revision} {self.token}"

    @staticmethod
    def new_token():
        return uuid.uuid4().hex


class ConfigChange(models.Model):
    """The change log of a scope: which flag or segment changed at which revision (``flag_key`` ``*``: all).

    A process holding a snapshot at revision R reloads only what the entries after R name; old entries are
    pruned (a process further behind rebuilds in full).
    """

    scope = models.CharField(max_length=40)
    revision = models.BigIntegerField()
    flag_key = models.CharField(max_length=100, blank=True)
    segment_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["scope", "revision"], name="flags_change_scope_rev")]

    def __str__(self):
        return f"{self.scope}@{self.revision}: {self.flag_key or f'segment {self.segment_id}'}"


class RampStatus(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    REVERTED = "reverted", "Reverted"


class GradualRollout(models.Model):
    """A scheduled ramp of a flag's rollout percentage in one environment, advanced by Celery beat.

    ``steps``: ``[{"percentage": 10, "minutes": 0}, {"percentage": 50, "minutes": 60}, ...]`` — each step is
    applied ``minutes`` after the previous one (the first one ``minutes`` after the start).
    """

    state = models.ForeignKey(FlagEnvironment, on_delete=models.CASCADE, related_name="ramps")
    steps = models.JSONField()
    status = models.CharField(max_length=20, choices=RampStatus.choices, default=RampStatus.RUNNING)
    current_step = models.IntegerField(default=-1, help_text="index of the last applied step (-1: none yet)")
    next_step_at = models.DateTimeField(null=True, blank=True)
    previous_percentage = models.IntegerField(default=0, help_text="the rollout before the ramp (for revert)")
    previous_config = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True, help_text="when the last step applied")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"ramp of {self.state} ({self.status})"

    @property
    def current_percentage(self):
        return self.steps[self.current_step]["percentage"] if self.current_step >= 0 else self.previous_percentage


class GuardEvaluation(models.Model):
    """One judgement of one of a flag's guards (``monitoring_alerts[guard]``) during one of its ramps."""

    ramp = models.ForeignKey(GradualRollout, on_delete=models.CASCADE, related_name="guard_evaluations")
    guard = models.PositiveSmallIntegerField(help_text="the index of the guard in the flag's monitoring alerts")
    rule = models.CharField(max_length=200, help_text="the guard as it was judged")
    at = models.DateTimeField(default=timezone.now)
    decision = models.CharField(max_length=12)
    value = models.FloatField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    action = models.CharField(max_length=20, blank=True, help_text="what firing did (paused, reverted)")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["ramp", "guard", "-at"]), models.Index(fields=["at"])]

    def __str__(self):
        return f"{self.rule} at {self.at:%H:%M:%S}: {self.decision}"


class ApiKeyKind(models.TextChoices):
    CLIENT = "client", "Client (server-side SDKs: Unleash client API, OFREP)"
    FRONTEND = "frontend", "Frontend (browsers and apps: frontend API, OFREP)"
    ADMIN = "admin", "Admin (every API of its environment, export)"


class ApiKey(models.Model):
    """An environment-scoped key for the evaluation APIs. Only its SHA-256 is stored; shown once."""

    name = models.CharField(max_length=100, blank=True)
    environment = models.ForeignKey("releases.Environment", on_delete=models.CASCADE, related_name="flag_api_keys")
    kind = models.CharField(max_length=20, choices=ApiKeyKind.choices)
    prefix = models.CharField(max_length=16, help_text="the first characters, to recognise a key")
    key_hash = models.CharField(max_length=64, unique=True)
    rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="OFREP requests per second per process (empty: the default)"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["environment__position", "kind", "-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix}… ({self.kind} @ {self.environment.name})"

    @staticmethod
    def hash(raw):
        return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()

    @property
    def is_active(self):
        return self.revoked_at is None


class ClientApplication(models.Model):
    """An SDK instance that registered through ``POST /api/client/register``."""

    environment = models.ForeignKey("releases.Environment", on_delete=models.CASCADE, related_name="flag_clients")
    app_name = models.CharField(max_length=200)
    instance_id = models.CharField(max_length=200)
    sdk_version = models.CharField(max_length=100, blank=True)
    strategies = models.JSONField(default=list, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    interval = models.IntegerField(null=True, blank=True)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["environment", "app_name", "instance_id"], name="flags_client_unique")
        ]

    def __str__(self):
        return f"{self.app_name}/{self.instance_id}"


class FlagMetricsBucket(models.Model):
    """Evaluation counts of one flag in one environment per time bucket (not a row per request)."""

    environment = models.ForeignKey("releases.Environment", on_delete=models.CASCADE, related_name="flag_metrics")
    flag_key = models.CharField(max_length=200)
    bucket_start = models.DateTimeField()
    yes = models.BigIntegerField(default=0)
    no = models.BigIntegerField(default=0)
    variants = models.JSONField(default=dict, blank=True)
    app_names = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["environment", "flag_key", "bucket_start"], name="flags_bucket_unique")
        ]
        ordering = ["-bucket_start", "flag_key"]

    def __str__(self):
        return f"{self.flag_key} @ {self.bucket_start:%Y-%m-%d %H:%M}: {self.yes} yes / {self.no} no"


class ApprovalPolicy(models.Model):
    """Per environment: do flag changes need a second person's approval? (Default: production tier yes.)"""

    environment = models.OneToOneField(
        "releases.Environment", on_delete=models.CASCADE, related_name="flag_policy"
    )
    require_approval = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "approval policies"

    def __str__(self):
        return f"{self.environment.name}: {'approval required' if self.require_approval else 'no approval'}"


class ChangeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Approved and applied"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class FlagChangeRequest(models.Model):
    """A proposed change of a flag's state in an environment that needs a second person's approval."""

    state = models.ForeignKey(FlagEnvironment, on_delete=models.CASCADE, related_name="change_requests")
    proposed = models.JSONField(help_text="the new configuration: enabled, rollout, strategies, variants")
    base = models.JSONField(help_text="the configuration it was proposed against")
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=ChangeStatus.choices, default=ChangeStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"change of {self.state} ({self.status})"
