"""The append-only, hash-chained audit trail shared by every app."""
from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit row."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit events are append-only: they cannot be updated")

    def delete(self):
        raise AppendOnlyError("audit events are append-only: they cannot be deleted")

    def for_object(self, obj):
        return self.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))


class AuditEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # No database constraint and no cascade: deleting a user must never touch the trail.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=100, db_index=True)
    object_id = models.CharField(max_length=64, db_index=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # How ``hash`` is computed (pmrelease.audit): 1 for rows written before the audit key (SHA-256 of some
    # fields), 2 for HMAC-SHA256 of every field under AUDIT_KEY; the default is the rows that existed then.
    scheme = models.PositiveSmallIntegerField(default=1)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["object_type", "object_id"]),
                   # the admin's actor filter and the API's ?actor= (issue 18)
                   models.Index(fields=["actor_username", "-id"], name="auditevent_actor_idx")]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_username or 'system'} {self.action} {self.object_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("audit events are append-only: they cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events are append-only: they cannot be deleted")


class ServiceAccount(models.Model):
    """A non-person account (CI, scripts): a user with no usable password and no admin login, whose role
    groups give it environment access like a person's; it acts through its API tokens (``pmrelease.tokens``)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="service_account")
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["user__username"]

    def __str__(self):
        return f"{self.user.get_username()} (service account)"


class ApiToken(models.Model):
    """An API token of a person or a service account (``Authorization: Bearer <key>`` or ``Token <key>``). Only
    the SHA-256 of the key is stored: the key is shown once, when it is issued (``pmrelease.tokens``). Its
    ``scopes`` bound what it may do ("*": everything its account may), ``environments`` (names; empty: all)
    where, ``expires_at`` until when; a revoked token stays listed with who revoked it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=8, help_text="the first characters of the key, to recognise it")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    scopes = models.JSONField(default=list, blank=True, help_text='e.g. ["read", "gates:report"]; ["*"]: all')
    environments = models.JSONField(default=list, blank=True, help_text="environment names; empty: every one")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Issued from a session with a recent second factor (pmrelease.identity.stepup): only such a person's token
    # may do a step-up action (``stepup.token_may_step_up``), else a token would bypass the second factor.
    created_in_step_up = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.user} {self.prefix}… {self.name}".rstrip()


class IdempotencyRecord(models.Model):
    """A POST's ``Idempotency-Key`` and, once answered, its answer (``pmrelease.idempotency``)."""

    owner = models.CharField(max_length=80, help_text="whose key: a hash of the Authorization header, or a user")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="empty while running")
    content_type = models.CharField(max_length=100, blank=True)
    location = models.CharField(max_length=500, blank=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key")]


# --- delivery (pmrelease.delivery): channels, subscriptions, notifications and their attempts -------------------
class Channel(models.Model):
    """A named notification channel: an apprise URL (Slack, e-mail, SMS, Teams, PagerDuty, JSON webhook…) that
    is either stored encrypted (``url_encrypted``, pmrelease.crypto) or read from an environment variable
    (``url_env``). The URL is never shown back in clear: it holds the channel's credentials."""

    name = models.SlugField(max_length=60, unique=True, help_text="e.g. slack, email, sms, ops-pagerduty")
    description = models.CharField(max_length=200, blank=True)
    url_encrypted = models.TextField(blank=True, editable=False)
    url_hint = models.CharField(max_length=40, blank=True,
                                help_text="the URL's scheme, to recognise it (never its secrets)")
    url_env = models.CharField(max_length=100, blank=True,
                               help_text="Name of the environment variable holding the apprise URL (instead of "
                                         "storing it).")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # A signed webhook (pmrelease.delivery: "webhook" kind) POSTs the event's JSON to its http(s) URL, signed with
    # HMAC-SHA256 under the channel's secret (stored encrypted, never shown back).
    kind = models.CharField(max_length=10, choices=[("apprise", "apprise URL"), ("webhook", "signed webhook")],
                            default="apprise")
    secret_encrypted = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Subscription(models.Model):
    """A channel receives one kind of event ("*": every kind) of one environment ("": every environment)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="subscriptions")
    event = models.CharField(max_length=40)
    environment = models.CharField(max_length=50, blank=True, help_text="an environment's name; empty: all")

    class Meta:
        ordering = ["channel", "event", "environment"]
        constraints = [models.UniqueConstraint(fields=["channel", "event", "environment"],
                                               name="subscription_unique")]

    def __str__(self):
        return f"{self.channel}: {self.event} in {self.environment or 'every environment'}"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class Notification(models.Model):
    """One event to one channel (or, with no channel, an e-mail to ``recipients``: the people it concerns).
    ``key`` makes a repeated event (a redelivered task) create nothing new."""

    event = models.CharField(max_length=40, db_index=True)
    environment = models.CharField(max_length=50, blank=True)
    key = models.CharField(max_length=120)
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="notifications")
    recipients = models.JSONField(default=list, blank=True)
    title = models.CharField(max_length=250)
    body = models.TextField()
    severity = models.CharField(max_length=10, default="info")
    data = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["key", "channel"], name="notification_unique_key"),
                       models.UniqueConstraint(fields=["key"], condition=models.Q(channel__isnull=True),
                                               name="notification_unique_key_people")]
        indexes = [models.Index(fields=["status", "id"])]

    def __str__(self):
        return f"{self.event} → {self.channel or 'people'}"


class DeliveryAttempt(models.Model):
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="delivery_attempts")
    at = models.DateTimeField(default=timezone.now)
    delivered = models.BooleanField()
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="a webhook's HTTP status")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.notification}: {'delivered' if self.delivered else 'failed'} at {self.at:%H:%M:%S}"


# --- identity (pmrelease.identity): who signs in from where, and the roles their groups give -----------------
class IdentitySource(models.TextChoices):
    OIDC = "oidc", "OpenID Connect"
    LDAP = "ldap", "LDAP"


class ExternalIdentity(models.Model):
    """A person who signs in through the IdP or the directory: such an account never has a password here."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identity")
    source = models.CharField(max_length=10, choices=IdentitySource.choices)
    subject = models.CharField(max_length=255, help_text="the IdP's sub claim, or the directory DN")
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "subject"], name="external_identity_unique_subject")]
        verbose_name_plural = "external identities"

    def __str__(self):
        return f"{self.user} ({self.source}: {self.subject})"


class RoleMapping(models.Model):
    """IdP or directory group name -> portal role (a role group, pmrelease.roles.Role). Edited by administrators
    (through pmrelease.identity.rolemap) or set from ROLE_MAPPINGS in the environment."""

    source = models.CharField(max_length=10, choices=IdentitySource.choices)
    group_name = models.CharField(max_length=255, help_text="the group as the source names it (a claim value, a DN or cn)")
    role = models.CharField(max_length=30)

    class Meta:
        ordering = ["source", "group_name", "role"]
        constraints = [models.UniqueConstraint(fields=["source", "group_name", "role"],
                                               name="role_mapping_unique")]

    def __str__(self):
        return f"{self.source}:{self.group_name} -> {self.role}"


class RoleGrant(models.Model):
    """A role membership that a sign-in synchronised from a source (and will take away again)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_grants")
    role = models.CharField(max_length=30)
    source = models.CharField(max_length=10, choices=IdentitySource.choices)
    groups = models.JSONField(default=list, help_text="the source's groups that map to the role")
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="role_grant_unique")]

    def __str__(self):
        return f"{self.user} {self.role} (from {self.source})"
