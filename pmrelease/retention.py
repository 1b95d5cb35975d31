"""Retention of the delivery log: notifications that reached an end (delivered, or failed for good) and their
attempts are deleted ``NOTIFICATION_RETENTION_DAYS`` after they were made (beat, hourly; pending ones are
kept whatever their age). Deletes go in batches of ``batch`` rows, each its own short transaction, so a first
prune after years of history never holds a long lock."""
import datetime as dt

from django.conf import settings
from django.utils import timezone

from .models import Notification, NotificationStatus


def prune_in_batches(queryset, batch):
    """Delete ``queryset``'s rows ``batch`` at a time (by primary key); returns how many."""
    total = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        queryset.model.objects.filter(pk__in=ids).delete()
        total += len(ids)


def prune_notifications(*, now=None, batch=5000):
    """Delete the delivered and failed notifications older than the retention (with their attempts)."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
    ended = Notification.objects.filter(created_at__lt=cutoff,
                                        status__in=[NotificationStatus.DELIVERED, NotificationStatus.FAILED])
    return prune_in_batches(ended, batch)
