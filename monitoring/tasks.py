"""Thin Celery tasks of the status page: load by id, call a service, return. Idempotent."""
import logging

from celery import shared_task

from .statuspage import maintenance, publishing, subscribers
from .statuspage.models import Delivery, Subscriber

log = logging.getLogger(__name__)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=30)
def publish_status_site(pending=False):
    """Publish what changed (``publishing.publish_pending``): with ``pending`` (queued after a change) the pages
    the waiting requests name, nothing when another task published them already; without (the beat) everything.
    Serialised by publish_site's lock file; the last run renders the newest state, so the last change is always
    published."""
    return publishing.publish_pending(only_waiting=pending)


@shared_task
def maintenance_tick():
    done = maintenance.maintenance_tick()
    if any(done.values()):
        log.info("maintenance tick: %s", done)
    return done


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_confirmation(subscriber_id):
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return False
    return subscribers.send_confirmation_email(subscriber=subscriber)


@shared_task
def notify_subscribers(kind, obj_id, event):
    return subscribers.notification_fan_out(kind=kind, obj_id=obj_id, event=event)


@shared_task(bind=True, max_retries=6)
def deliver(self, delivery_id):
    delivery = Delivery.objects.select_related("subscriber").filter(pk=delivery_id).first()
    if delivery is None:
        return None
    try:
        return subscribers.delivery_send(delivery=delivery, final_attempt=self.request.retries >= self.max_retries)
    except subscribers.DeliveryFailed as exc:
        raise self.retry(exc=exc, countdown=min(30 * 2 ** self.request.retries, 3600)) from exc


@shared_task
def prune_metrics():
    """Drop builtin metric samples older than METRICS_RETENTION_DAYS."""
    from .metrics import services as metrics

    return metrics.prune()


@shared_task
def prune_alert_events():
    """Drop alert rule state changes older than ALERT_EVENT_RETENTION_DAYS (each rule's latest is kept)."""
    from .alerting import services as alerting

    return alerting.prune_events()


@shared_task(soft_time_limit=240, time_limit=300)
def evaluate_alert_rules():
    """Beat: evaluate every enabled alert rule against its environment's metric provider."""
    from .alerting import services as alerting

    changes = alerting.evaluate_all()
    if changes:
        log.info("alert rules changed: %s", changes)
    return {str(k): v for k, v in changes.items()}
