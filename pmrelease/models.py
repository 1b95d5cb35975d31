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
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_username or 'system'} {self.action} {self.object_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("audit events are append-only: they cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events are append-only: they cannot be deleted")


class ApiToken(models.Model):
    """A person's API token (``Authorization: Token <key>``). Only the SHA-256 of the key is stored: the key
    is shown once, when it is issued (``pmrelease.tokens``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=8, help_text="the first characters of the key, to recognise it")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Issued from a session with a recent second factor (pmrelease.identity.stepup): only such a person's token
    # may do a step-up action (``stepup.token_may_step_up``), else a token would bypass the second factor.
    created_in_step_up = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.user} {self.prefix}…"


# --- identity (issue 19): where people come from and which roles their directory groups give them -------------
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
