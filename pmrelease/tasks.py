"""Periodic integrity work on the audit trail: the chain-head checkpoint and the full check."""
import logging

from celery import shared_task

from . import audit, checkpoints

logger = logging.getLogger(__name__)


@shared_task
def audit_checkpoint():
    """Append a signed checkpoint of the trail's head to AUDIT_CHECKPOINT_PATH and the log (if it grew)."""
    checkpoint = checkpoints.write()
    return checkpoint.as_line() if checkpoint else None


@shared_task
def audit_verify_chain():
    report = audit.verify()
    if report.ok:
        logger.info("audit chain intact (%d events)", report.checked)
    else:
        for problem in report.breaks:
            logger.error("audit chain BROKEN: %s", problem)
    return {"ok": report.ok, "checked": report.checked, "breaks": [str(b) for b in report.breaks]}


@shared_task(bind=True, max_retries=None, soft_time_limit=60, time_limit=90)
def deliver_notification(self, notification_id):
    """One attempt at a notification (pmrelease.delivery.send); a transient failure is retried with
    exponential backoff up to DELIVERY_MAX_RETRIES times, every attempt recorded."""
    from django.conf import settings

    from . import delivery

    final = self.request.retries >= settings.DELIVERY_MAX_RETRIES
    try:
        return delivery.send(notification_id=notification_id, final_attempt=final)
    except delivery.DeliveryFailed as exc:
        raise self.retry(exc=exc, countdown=delivery.backoff(self.request.retries)) from exc


@shared_task
def fan_out_notifications(notification_ids):
    """One event's notifications handed to one delivery task each (pmrelease.delivery.notify sends one message)."""
    from . import delivery

    return delivery.fan_out(notification_ids)


@shared_task
def notifications_prune():
    """Forget delivered and failed notifications older than NOTIFICATION_RETENTION_DAYS (pmrelease.retention)."""
    from . import retention

    return retention.prune_notifications()


@shared_task
def idempotency_prune():
    """Forget Idempotency-Keys older than their 24 hours (pmrelease.idempotency.prune)."""
    from . import idempotency

    return idempotency.prune()
