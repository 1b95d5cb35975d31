"""The one outbound delivery engine: named channels (apprise URLs), subscriptions, Celery delivery with retries.

``notify(event=..., ...)`` is what every app calls when something happened that people want to hear about. It
writes one ``Notification`` per channel subscribed to the event in its environment (plus the channels the
caller names, an alert rule's, say, plus an e-mail to ``recipients`` when the event concerns particular
people) and hands each to the ``deliver_notification`` task after the caller's transaction commits. It never
touches the network and never raises: a misconfigured or failing channel cannot block or slow the deployment,
approval or alert that produced the event. The worker sends through apprise (``send``), records every attempt
(delivered, or failed with the error) and retries with exponential backoff; after the last retry the
notification is ``failed`` and an administrator may redeliver it.

Channel URLs hold credentials: they are stored encrypted (pmrelease.crypto) or named by an environment variable,
and shown back only as their scheme.
"""
import logging
import os
import re
import time

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from . import audit, crypto, errors
from .models import Channel, DeliveryAttempt, Notification, NotificationStatus, Subscription
from .registry import Hook
from .services import model_create, model_delete, model_update

log = logging.getLogger(__name__)

EVENTS = {
    "deployment.started": "Deployment started",
    "deployment.step_changed": "Deployment step started, finished or waiting",
    "deployment.succeeded": "Deployment succeeded",
    "deployment.failed": "Deployment failed",
    "deployment.rolled_back": "Deployment rolled back (automatic or not)",
    "approval.requested": "Approval requested (release, change request)",
    "release.approved": "Release approved",
    "gate.result": "Testing-gate result recorded",
    "gate.override_needed": "Gate waiting for an override",
    "trigger.fired": "Rollback trigger fired",
    "alert.firing": "Alert firing",
    "alert.resolved": "Alert resolved",
    "slo.burn_rate": "SLO error budget burning fast (multi-window burn-rate alert)",
    "incident.published": "Incident published",
    "flag.stale": "Stale feature flags",
    "secret.rotation": "Secret reference due, in grace or overdue for rotation",
    "change.submitted": "Change request submitted",
    "change.in_review": "Change request in technical review",
    "change.approved": "Change request approved",
    "change.rejected": "Change request rejected (back to draft)",
    "change.reopened": "Change request back in review (approved content edited)",
    "change.scheduled": "Change request scheduled",
    "change.implementing": "Change request implementation started",
    "change.validating": "Change request implemented, validation started",
    "change.closed": "Change request closed",
    "change.failed": "Change request failed",
    "change.cancelled": "Change request cancelled",
    "channel.test": "Channel test",
}
ANY = "*"
EXPLICIT_ONLY = {"deployment.step_changed"}  # too many for "every event" (a chat channel): subscribed to by name
SEVERITIES = ("info", "success", "warning", "failure")
CHANNEL_FIELDS = ["name", "description", "url_env", "enabled", "kind"]
AUDIT_FIELDS = ["name", "description", "url_hint", "url_env", "enabled", "kind"]
WEBHOOK = "webhook"  # the signed-webhook kind (pmrelease.webhooks); every other channel is an apprise URL
SECRET_CONTEXT = "webhook-secret"
MIN_SECRET_LENGTH = 16
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")

# The releases app says which environment names exist (pmrelease imports no app).
environment_exists = Hook("delivery_environment_exists", "whether an environment of that name exists: "
                          "environment_exists(name) -> bool")


def _context(channel_name):
    return f"channel:{channel_name}"


def _require_administrator(by):
    if not getattr(by, "is_superuser", False):
        raise errors.PermissionDenied("only an administrator may configure notification channels")


# --- channels -------------------------------------------------------------------------------------------------
def url_problem(url):
    """Why apprise cannot use ``url`` (empty: it can)."""
    import apprise

    if not isinstance(url, str) or "://" not in url:
        return "an apprise URL such as slack://…, mailto://…, json://host/path or pagerduty://…"
    if apprise.Apprise.instantiate(url) is None:
        return f"apprise does not accept this {url.split('://', 1)[0]}:// URL (unknown scheme or missing parts)"
    return ""


def describe(channel):
    """How the admin and the API show a channel's URL: its scheme and where it is kept, never the URL."""
    if channel.url_env:
        return f"from ${channel.url_env}" + ("" if os.environ.get(channel.url_env) else " (not set here)")
    if channel.url_encrypted:
        return f"{channel.url_hint}… (stored encrypted, key {crypto.key_id(channel.url_encrypted)})"
    return "(no URL)"


def channel_save(*, data, by, channel=None):
    """Create or change a channel. ``data["url"]`` (write-only) is encrypted; omit it to keep the stored one."""
    _require_administrator(by)
    data = dict(data)
    url = data.pop("url", None)
    secret = data.pop("secret", None)
    kind = data.get("kind", channel.kind if channel else "apprise")
    problems = {}
    if kind not in ("apprise", WEBHOOK):
        problems["kind"] = ["apprise or webhook"]
    if url:
        problem = webhook_url_problem(url) if kind == WEBHOOK else url_problem(url)
        if problem:
            problems["url"] = [problem]
    if kind == WEBHOOK:
        has_secret = bool(secret) or (channel is not None and bool(channel.secret_encrypted))
        if secret is not None and secret != "" and len(secret) < MIN_SECRET_LENGTH:
            problems["secret"] = [f"at least {MIN_SECRET_LENGTH} characters"]
        elif not has_secret:
            problems["secret"] = ["a signed webhook needs a secret (the receiver checks the signature with it)"]
    url_env = data.get("url_env", channel.url_env if channel else "")
    if url_env and not ENV_NAME.fullmatch(url_env):
        problems["url_env"] = ["the name of an environment variable (capitals, digits, _)"]
    has_stored = bool(url) or (channel is not None and bool(channel.url_encrypted) and url != "")
    if url_env and url:
        problems["url"] = ["give either the URL (stored encrypted) or url_env, not both"]
    elif not url_env and not has_stored:
        problems["url"] = ["an apprise URL (stored encrypted) or url_env naming the variable that holds it"]
    if problems:
        raise errors.ValidationFailed("invalid channel", field_errors=problems)
    extra = {}
    name = data.get("name", channel.name if channel else "")
    if url:
        extra = {"url_encrypted": crypto.encrypt(url, context=_context(name)),
                 "url_hint": url.split("://", 1)[0][:30] + "://"}
    elif url_env:
        extra = {"url_encrypted": "", "url_hint": ""}
    if kind == WEBHOOK and secret:
        extra["secret_encrypted"] = crypto.encrypt(secret, context=SECRET_CONTEXT)
    with transaction.atomic():
        if channel is None or channel.pk is None:
            return model_create(model=Channel, data=data, fields=CHANNEL_FIELDS, by=by, extra=extra,
                                audit_fields=AUDIT_FIELDS, action="channel.create")
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        if "name" in data and data["name"] != locked.name and locked.url_encrypted and not url and not url_env:
            # the name is bound to the sealed URL: re-seal it under the new name
            extra = {"url_encrypted": crypto.encrypt(crypto.decrypt(locked.url_encrypted,
                                                                    context=_context(locked.name)),
                                                     context=_context(data["name"]))}
        for field, value in extra.items():
            setattr(locked, field, value)
        instance, changed = model_update(instance=locked, data=data, fields=CHANNEL_FIELDS, by=by,
                                         audit_fields=AUDIT_FIELDS, action="channel.update")
        if url and "url_hint" not in changed:  # a new secret with the same scheme: still worth a trail row
            instance.save(update_fields=["url_encrypted"])
            audit.record(action="channel.url", obj=instance, by=by, after={"url_hint": instance.url_hint})
        if kind == WEBHOOK and secret:
            instance.save(update_fields=["secret_encrypted"])
            audit.record(action="channel.secret", obj=instance, by=by, after={"secret": "changed"})
        return instance


def channel_delete(*, channel, by):
    _require_administrator(by)
    with transaction.atomic():
        model_delete(instance=channel, by=by, fields=AUDIT_FIELDS, action="channel.delete")


def webhook_url_problem(url):
    """Why a signed webhook may not go to ``url``: public http(s) addresses only, unless
    DELIVERY_WEBHOOK_ALLOW_PRIVATE (the status page's rule, pmrelease.addresses)."""
    from .addresses import public_target_problem

    return public_target_problem(url, allow_private=settings.DELIVERY_WEBHOOK_ALLOW_PRIVATE) or ""


def channel_url(channel):
    """The channel's apprise URL in clear (the worker's use only); raises DeliveryFailed(permanent)."""
    if channel.url_env:
        value = os.environ.get(channel.url_env, "")
        if not value:
            raise DeliveryFailed(f"the environment variable {channel.url_env} is not set", permanent=True)
        return value
    try:
        return crypto.decrypt(channel.url_encrypted, context=_context(channel.name))
    except crypto.DecryptionFailed as exc:
        raise DeliveryFailed(f"the stored URL does not decrypt: {exc}", permanent=True) from None


@crypto.rewrapper("delivery channels")
def channels_rewrap():
    """After adding a new current key to PMR_ENCRYPTION_KEYS: move every stored URL to it. Returns how many."""
    moved = 0
    with transaction.atomic():
        for channel in Channel.objects.select_for_update().exclude(url_encrypted=""):
            token = crypto.rewrap(channel.url_encrypted, context=_context(channel.name))
            if token != channel.url_encrypted:
                Channel.objects.filter(pk=channel.pk).update(url_encrypted=token)
                moved += 1
    return moved


# --- subscriptions --------------------------------------------------------------------------------------------
def subscription_save(*, channel, event, environment="", by):
    _require_administrator(by)
    problems = {}
    if event != ANY and event not in EVENTS:
        problems["event"] = [f"one of {ANY}, {', '.join(EVENTS)}"]
    if environment and not environment_exists(environment):
        problems["environment"] = [f"no environment named '{environment}'"]
    if problems:
        raise errors.ValidationFailed("invalid subscription", field_errors=problems)
    with transaction.atomic():
        existing = Subscription.objects.filter(channel=channel, event=event, environment=environment).first()
        if existing:
            return existing
        return model_create(model=Subscription, data={"event": event, "environment": environment},
                            fields=["event", "environment"], by=by, extra={"channel": channel},
                            action="channel.subscribe", audit_obj=channel)


def subscription_delete(*, subscription, by):
    _require_administrator(by)
    with transaction.atomic():
        model_delete(instance=subscription, by=by, fields=["event", "environment"], action="channel.unsubscribe",
                     audit_obj=subscription.channel)


# --- events ---------------------------------------------------------------------------------------------------
def subscribed_channels(event, environment=""):
    events = [event] if event in EXPLICIT_ONLY else [event, ANY]
    matching = Subscription.objects.filter(event__in=events, environment__in=[environment, ""],
                                           channel__enabled=True)
    return list(Channel.objects.filter(pk__in=matching.values("channel_id")))


def notify(*, event, title, body, environment="", key="", severity="info", data=None, channels=(),
           recipients=(), subscribed=True):
    """Record the event's notifications and dispatch them after commit: to the channels subscribed to the
    event in ``environment`` (unless ``subscribed`` is false), to ``channels``, and by e-mail to
    ``recipients``. Returns their ids ([] when nothing listens). Never raises and never waits on a channel:
    a problem here is logged, not passed on."""
    try:
        if event not in EVENTS:
            raise ValueError(f"unknown event kind {event!r}")
        with transaction.atomic():  # a savepoint: a database error here never breaks the caller's transaction
            return _record(event=event, title=title, body=body, environment=environment, key=key,
                           severity=severity, data=data, channels=channels, recipients=recipients,
                           subscribed=subscribed)
    except (DatabaseError, ValueError, TypeError):
        log.exception("notification of %s could not be recorded", event)
        return []


def _record(*, event, title, body, environment, key, severity, data, channels, recipients, subscribed):
    targets = {c.pk: c for c in subscribed_channels(event, environment)} if subscribed else {}
    targets.update({c.pk: c for c in channels if c.enabled})
    key = (key or f"{event}-{timezone.now().timestamp():.6f}")[:120]
    rows = [dict(channel=c) for c in targets.values()]
    people = sorted({r for r in recipients if r})
    if people:
        rows.append(dict(channel=None, recipients=people))
    done = set(Notification.objects.filter(key=key).values_list("channel_id", flat=True)) if rows else set()
    fields = dict(event=event, environment=environment or "", key=key, title=title[:250], body=body,
                  severity=severity if severity in SEVERITIES else "info", data=data or {})
    fresh = [Notification(**fields, **row) for row in rows if (row["channel"].pk if row["channel"] else None)
             not in done]
    if not fresh:
        return []
    try:
        with transaction.atomic():
            created = [n.pk for n in Notification.objects.bulk_create(fresh)]
    except IntegrityError:  # the same event recorded at the same moment elsewhere: one row at a time
        created = []
        for notification in fresh:
            try:
                with transaction.atomic():
                    notification.pk = None
                    notification.save(force_insert=True)
                    created.append(notification.pk)
            except IntegrityError:
                continue
    if created:
        transaction.on_commit(lambda: _dispatch_many(created), robust=True)
    return created


def _dispatch(pk, countdown=None):
    from .tasks import deliver_notification

    deliver_notification.apply_async((pk,), countdown=countdown)


def _dispatch_many(ids):
    """One broker message for an event's notifications, whatever their number: the worker fans them out."""
    if len(ids) == 1:
        return _dispatch(ids[0])
    from .tasks import fan_out_notifications

    fan_out_notifications.apply_async((list(ids),))


def fan_out(ids):
    """The worker's side of ``_dispatch_many``: one delivery task per notification (each retried on its own)."""
    for pk in ids:
        _dispatch(pk)
    return len(ids)


# --- sending (the worker) ---------------------------------------------------------------------------------------
class DeliveryFailed(Exception):
    def __init__(self, message, *, permanent=False):
        super().__init__(message)
        self.permanent = permanent


def backoff(retries):
    """Seconds before retry number ``retries + 1``: the base doubled per retry, at most an hour."""
    return min(settings.DELIVERY_BACKOFF_SECONDS * 2 ** retries, 3600.0)


def _send_apprise(notification):
    import apprise

    url = channel_url(notification.channel)
    sender = apprise.Apprise()
    if not sender.add(url):
        raise DeliveryFailed(url_problem(url) or "apprise refused the channel's URL", permanent=True)
    result = sender.notify(body=notification.body, title=notification.title,
                           notify_type=getattr(apprise.NotifyType, notification.severity.upper()),
                           timeout=settings.DELIVERY_TIMEOUT_SECONDS)
    if not result:
        said = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
        raise DeliveryFailed("; ".join(said) or f"apprise reported {result.status.name.lower()}")


class WebhookRefused(DeliveryFailed):
    def __init__(self, message, *, status=None, permanent=False):
        super().__init__(message, permanent=permanent)
        self.status = status


def _send_webhook(notification):
    """POST the signed event (pmrelease.webhooks); returns the HTTP status, raises WebhookRefused otherwise."""
    import httpx

    from . import webhooks

    url = channel_url(notification.channel)
    problem = webhook_url_problem(url)  # again at send time: DNS may have changed
    if problem:
        raise WebhookRefused(f"webhook URL refused: {problem}", permanent=True)
    try:
        secret = crypto.decrypt(notification.channel.secret_encrypted, context=SECRET_CONTEXT)
    except crypto.DecryptionFailed as exc:
        raise WebhookRefused(f"the stored secret does not decrypt: {exc}", permanent=True) from None
    body = webhooks.body_bytes(webhooks.payload(
        delivery_id=notification.key, event=notification.event, created_at=notification.created_at.isoformat(),
        environment=notification.environment, title=notification.title, severity=notification.severity,
        data=notification.data))
    headers = {"Content-Type": "application/json", webhooks.EVENT_HEADER: notification.event,
               webhooks.DELIVERY_HEADER: notification.key, "User-Agent": f"{settings.PRODUCT_NAME} webhooks",
               webhooks.SIGNATURE_HEADER: webhooks.signature(secret, body, time.time())}
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=settings.DELIVERY_TIMEOUT_SECONDS,
                              follow_redirects=False)
    except httpx.HTTPError as exc:
        raise WebhookRefused(f"{exc.__class__.__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise WebhookRefused(f"HTTP {response.status_code}", status=response.status_code)
    return response.status_code


def _send_mail(notification):
    from django.core.mail import send_mail

    try:
        send_mail(subject=notification.title, message=notification.body, from_email=settings.DEFAULT_FROM_EMAIL,
                  recipient_list=list(notification.recipients))
    except OSError as exc:
        raise DeliveryFailed(f"{exc.__class__.__name__}: {exc}") from exc


def send(*, notification_id, final_attempt=False):
    """One delivery attempt, recorded. Returns the notification's status; raises DeliveryFailed when the task
    should retry (a transient failure before the last attempt)."""
    notification = Notification.objects.select_related("channel").filter(pk=notification_id).first()
    if notification is None or notification.status != NotificationStatus.PENDING:
        return notification.status if notification else None
    started = time.monotonic()
    error, permanent, status = "", False, None
    try:
        if notification.channel_id is None:
            _send_mail(notification)
        elif not notification.channel.enabled:
            raise DeliveryFailed("the channel is disabled", permanent=True)
        elif notification.channel.kind == WEBHOOK:
            status = _send_webhook(notification)
        else:
            _send_apprise(notification)
    except DeliveryFailed as exc:
        error, permanent, status = str(exc), exc.permanent, getattr(exc, "status", None)
    except Exception as exc:  # noqa: BLE001 - a plugin's surprise is one failed attempt, recorded, never lost
        error = f"{exc.__class__.__name__}: {exc}"
    error = audit.redact(error)[:2000] if error else ""
    elapsed = int((time.monotonic() - started) * 1000)
    now = timezone.now()
    with transaction.atomic():
        DeliveryAttempt.objects.create(notification_id=notification.pk, at=now, delivered=not error, error=error,
                                       duration_ms=elapsed, response_status=status)
        fields = {"attempts": notification.attempts + 1, "last_error": error[:500]}
        if not error:
            fields.update(status=NotificationStatus.DELIVERED, delivered_at=now)
        elif permanent or final_attempt:
            fields["status"] = NotificationStatus.FAILED
        Notification.objects.filter(pk=notification.pk, status=NotificationStatus.PENDING).update(**fields)
    if error and not (permanent or final_attempt):
        raise DeliveryFailed(error)
    return fields.get("status", NotificationStatus.PENDING)


def redeliver(*, notification, by):
    """A failed notification back to pending and dispatched again (audited)."""
    _require_administrator(by)
    with transaction.atomic():
        locked = Notification.objects.select_for_update().get(pk=notification.pk)
        if locked.status != NotificationStatus.FAILED:
            raise errors.TransitionNotAllowed(f"only a failed notification can be redelivered (this one is "
                                              f"{locked.status})")
        Notification.objects.filter(pk=locked.pk).update(status=NotificationStatus.PENDING, attempts=0)
        audit.record(action="notification.redeliver", obj=locked, by=by)
        transaction.on_commit(lambda: _dispatch(locked.pk), robust=True)


def channel_test(*, channel, by):
    """Send a test message through ``channel`` (the admin's "send test" button)."""
    _require_administrator(by)
    return notify(event="channel.test", title=f"[{settings.PRODUCT_NAME}] Test of channel {channel.name}",
                  body=f"A test notification sent by {audit.actor_name(by)}.", channels=[channel],
                  key=f"channel-test-{channel.pk}-{timezone.now().timestamp():.6f}")
