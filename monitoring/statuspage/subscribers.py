"""Subscribers: e-mail double opt-in, confirmation and one-click unsubscribe with signed tokens, webhook
subscribers (public addresses only), the notification fan-out and the delivery of each notification."""
import datetime as dt

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from pmrelease import audit, errors
from pmrelease.services import model_create, model_update

from . import documents
from .access import require_operator
from .components import parse_id
from .documents import public_url
from .models import Component, Delivery, DeliveryStatus, Incident, Maintenance, Subscriber, SubscriberKind


def notify_later(kind, obj_id, event):
    from monitoring.tasks import notify_subscribers

    notify_subscribers.delay_on_commit(kind, obj_id, event)


TOKEN_SALT = "monitoring.subscriber"
CONFIRM_MAX_AGE = dt.timedelta(days=3)


def make_token(subscriber, purpose):
    return signing.dumps({"s": subscriber.pk, "p": purpose, "c": subscriber.created_at.timestamp()},
                         salt=TOKEN_SALT, compress=True)


def read_token(token, purpose, *, max_age):
    """The subscriber a token names, or ValidationFailed for forged, tampered, expired or stale tokens."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise errors.ValidationFailed("this link has expired; subscribe again to get a new one") from exc
    except signing.BadSignature as exc:
        raise errors.ValidationFailed("this link is not valid") from exc
    if not isinstance(data, dict) or data.get("p") != purpose:
        raise errors.ValidationFailed("this link is not valid")
    subscriber = Subscriber.objects.filter(pk=data.get("s")).first()
    if subscriber is None or abs(subscriber.created_at.timestamp() - float(data.get("c", 0))) > 0.001:
        raise errors.ValidationFailed("this link is not valid any more")
    return subscriber


def unsubscribe_max_age():
    return dt.timedelta(days=settings.STATUS_UNSUBSCRIBE_TOKEN_DAYS)


CONFIRMATION_RESEND_AFTER = dt.timedelta(minutes=10)


def subscribe_email(*, email, component_ids=()):
    """Start a double opt-in: a pending subscription and a confirmation e-mail (sent by Celery).

    Re-subscribing a pending or unsubscribed address starts over with fresh tokens; an active one is left
    as it is (and is told nothing new, so the form cannot be used to probe who subscribed).
    """
    from django.core.validators import validate_email

    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise errors.ValidationFailed("enter a valid e-mail address", field_errors={"email": exc.messages}) from exc
    if len(email) > 254:
        raise errors.ValidationFailed("enter a valid e-mail address",
                                      field_errors={"email": ["at most 254 characters"]})
    ids = [parse_id(i) for i in component_ids]
    if None in ids:
        bad = next(i for i, pk in zip(component_ids, ids, strict=True) if pk is None)
        raise errors.ValidationFailed(f"unknown component '{str(bad)[:40]}'",
                                      field_errors={"components": ["component ids are whole numbers"]})
    components = list(Component.objects.filter(pk__in=ids))
    with transaction.atomic():
        existing = Subscriber.objects.select_for_update().filter(kind=SubscriberKind.EMAIL, email=email).first()
        if existing is not None and existing.is_active:
            return existing
        if (existing is not None and not existing.unsubscribed_at
                and existing.created_at > timezone.now() - CONFIRMATION_RESEND_AFTER):
            return existing  # a confirmation went out moments ago: no mail flood through the public form
        if existing is not None:
            existing.delete()
        try:
            with transaction.atomic():
                subscriber = Subscriber.objects.create(kind=SubscriberKind.EMAIL, email=email)
        except IntegrityError as exc:
            raise errors.ValidationFailed("this address is being subscribed right now; try again") from exc
        subscriber.components.set(components)
        audit.record(action="subscriber.create", obj=subscriber, by=None,
                     after={"email": email, "components": [c.pk for c in components]})
        from monitoring.tasks import send_confirmation

        send_confirmation.delay_on_commit(subscriber.pk)
    return subscriber


def send_confirmation_email(*, subscriber):
    if subscriber.confirmed_at or subscriber.unsubscribed_at:
        return False
    context = {"product": settings.PRODUCT_NAME, "subscriber": subscriber,
               "confirm_url": public_url(f"subscriptions/confirm/{make_token(subscriber, 'confirm')}/"),
               "components": list(subscriber.components.all()), "page_url": public_url()}
    send_mail(subject=f"[{settings.PRODUCT_NAME} status] Confirm your subscription",
              message=render_to_string("emails/status_confirm.txt", context),
              from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=[subscriber.email])
    return True


def _stamp_once(subscriber, field, action):
    """Set the subscriber's ``field`` to now, audited, unless it is set already (a reused link changes nothing)."""
    with transaction.atomic():
        locked = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if getattr(locked, field) is None:
            locked, _ = model_update(instance=locked, data={field: timezone.now()}, fields=[field], by=None,
                                     action=action)
    return locked


def subscription_confirm(*, token):
    subscriber = read_token(token, "confirm", max_age=CONFIRM_MAX_AGE)
    if subscriber.unsubscribed_at:
        raise errors.ValidationFailed("this subscription was cancelled; subscribe again")
    return _stamp_once(subscriber, "confirmed_at", "subscriber.confirm")


def unsubscribe(*, token):
    subscriber = read_token(token, "unsubscribe", max_age=unsubscribe_max_age())
    return _stamp_once(subscriber, "unsubscribed_at", "subscriber.unsubscribe")


def webhook_target_problem(url):
    """Why the worker must not POST to ``url`` (None when it may): public addresses only (pmrelease.addresses).
    ``STATUS_WEBHOOK_ALLOW_PRIVATE = True`` lifts this for deployments whose receivers are internal."""
    from pmrelease.addresses import public_target_problem

    if settings.STATUS_WEBHOOK_ALLOW_PRIVATE:
        return None
    return public_target_problem(url)


def webhook_subscriber_create(*, url, components=(), by):
    require_operator(by)
    problem = webhook_target_problem(url)
    if problem:
        raise errors.ValidationFailed(f"webhook URL refused: {problem}", field_errors={"webhook_url": [problem]})
    with transaction.atomic():
        return model_create(model=Subscriber, data={"webhook_url": url, "components": list(components)},
                            fields=["webhook_url", "components"], by=by, action="subscriber.create",
                            extra={"kind": SubscriberKind.WEBHOOK, "confirmed_at": timezone.now()},
                            clean_exclude=["email"])


# --- notifications ----------------------------------------------------------------------------------------------
def _subscribers_for(component_ids):
    result = []
    active = Subscriber.objects.filter(confirmed_at__isnull=False, unsubscribed_at__isnull=True)
    for subscriber in active.prefetch_related("components"):
        wanted = {c.pk for c in subscriber.components.all()}
        if not wanted or not component_ids or wanted & set(component_ids):
            result.append(subscriber)
    return result


def notification_fan_out(*, kind, obj_id, event):
    """One Delivery per interested subscriber (idempotent through the unique event key), each sent by a task."""
    if kind == "incident":
        obj = Incident.objects.filter(pk=obj_id, published_at__isnull=False).first()
    else:
        obj = Maintenance.objects.filter(pk=obj_id).first()
    if obj is None:
        return []
    update = obj.updates.order_by("-created_at", "-id").first()
    component_ids = [c.pk for c in obj.components.all()]
    document = documents.incident_json(obj, maintenance=(kind == "maintenance"))
    reminder = event.endswith("-reminder")
    label = "Reminder: scheduled maintenance" if reminder else ("Maintenance" if kind == "maintenance" else "Incident")
    status_label = obj.get_status_display()
    subject = f"[{settings.PRODUCT_NAME} status] {label}: {obj.name} ({status_label})"
    created = []
    for subscriber in _subscribers_for(component_ids):
        context = {"product": settings.PRODUCT_NAME, "obj": obj, "kind": kind, "update": update,
                   "status_label": status_label, "reminder": reminder,
                   "link": public_url(f"incidents/{obj.pk}/") if kind == "incident" else public_url(),
                   "unsubscribe_url": public_url(f"subscriptions/unsubscribe/{make_token(subscriber, 'unsubscribe')}/")}
        payload = {"meta": {"unsubscribe": context["unsubscribe_url"], "event": event},
                   "page": {"id": documents.page_id(), "name": settings.PRODUCT_NAME},
                   ("scheduled_maintenance" if kind == "maintenance" else "incident"): document}
        delivery, was_created = Delivery.objects.get_or_create(
            subscriber=subscriber, event=event,
            defaults={"subject": subject[:250], "body": render_to_string("emails/status_notification.txt", context),
                      "payload": payload})
        if was_created:
            created.append(delivery.pk)
    from monitoring.tasks import deliver

    for pk in created:
        transaction.on_commit(lambda pk=pk: deliver.delay(pk))
    return created


class DeliveryFailed(Exception):
    """A delivery attempt failed; the task retries it."""


def delivery_send(*, delivery, final_attempt=False):
    """Send one notification. Raises DeliveryFailed on a transient failure (the task retries)."""
    import httpx
    from django.core.mail import EmailMessage

    if delivery.status != DeliveryStatus.PENDING:
        return delivery.status
    subscriber = delivery.subscriber
    if not subscriber.is_active:
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, last_error="unsubscribed")
        return DeliveryStatus.FAILED
    Delivery.objects.filter(pk=delivery.pk).update(attempts=delivery.attempts + 1)
    try:
        if subscriber.kind == SubscriberKind.EMAIL:
            unsubscribe_url = delivery.payload.get("meta", {}).get("unsubscribe", "")
            message = EmailMessage(subject=delivery.subject, body=delivery.body,
                                   from_email=settings.DEFAULT_FROM_EMAIL, to=[subscriber.email],
                                   headers={"List-Unsubscribe": f"<{unsubscribe_url}>",
                                            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
            message.send()
        else:
            problem = webhook_target_problem(subscriber.webhook_url)  # again at send time: DNS may have changed
            if problem:
                raise OSError(f"webhook URL refused: {problem}")
            response = httpx.post(subscriber.webhook_url, json=delivery.payload, timeout=10, follow_redirects=False,
                                  headers={"User-Agent": f"{settings.PRODUCT_NAME}-status-webhook"})
            response.raise_for_status()
    except (OSError, httpx.HTTPError) as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:500]
        fields = {"last_error": error}
        if final_attempt:
            fields["status"] = DeliveryStatus.FAILED
        Delivery.objects.filter(pk=delivery.pk).update(**fields)
        if final_attempt:
            return DeliveryStatus.FAILED
        raise DeliveryFailed(error) from exc
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SENT, sent_at=timezone.now(), last_error="")
    return DeliveryStatus.SENT
