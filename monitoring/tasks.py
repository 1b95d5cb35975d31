"""Thin Celery tasks of the status page: load by id, call a service, return. Idempotent."""
import logging

from celery import shared_task
from django.core.cache import cache

from . import publishing, services
from .models import Delivery, Subscriber

log = logging.getLogger(__name__)
PUBLISH_LOCK = "monitoring:publish-lock"


@shared_task(bind=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=30)
def publish_status_site(self):
    """Re-render the static status site. Concurrent runs are serialised by a short cache lock; a run that
    finds the lock taken retries shortly, so the last change is always published."""
    if not cache.add(PUBLISH_LOCK, "1", timeout=120):
        raise self.retry(countdown=2)
    try:
        return publishing.publish_site()
    finally:
        cache.delete(PUBLISH_LOCK)


@shared_task
def maintenance_tick():
    done = services.maintenance_tick()
    if any(done.values()):
        log.info("maintenance tick: %s", done)
    return done


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_confirmation(subscriber_id):
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return False
    return services.send_confirmation_email(subscriber=subscriber)


@shared_task
def notify_subscribers(kind, obj_id, event):
    return services.notification_fan_out(kind=kind, obj_id=obj_id, event=event)


@shared_task(bind=True, max_retries=6)
def deliver(self, delivery_id):
    delivery = Delivery.objects.select_related("subscriber").filter(pk=delivery_id).first()
    if delivery is None:
        return None
    try:
        return services.delivery_send(delivery=delivery, final_attempt=self.request.retries >= self.max_retries)
    except services.DeliveryFailed as exc:
        raise self.retry(exc=exc, countdown=min(30 * 2 ** self.request.retries, 3600)) from exc
