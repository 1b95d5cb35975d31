"""Retention: the delivery log and the alert rules' state changes do not grow forever."""
import datetime as dt

import pytest
from django.utils import timezone

from monitoring.alerting import services as alerting
from monitoring.alerting.models import AlertEvent, AlertRule
from pmrelease import retention
from pmrelease.models import DeliveryAttempt, Notification

pytestmark = pytest.mark.django_db


def _notification(key, status, age_days):
    made = timezone.now() - dt.timedelta(days=age_days)
    n = Notification.objects.create(event="deployment.succeeded", key=key, title=key, body="b", status=status,
                                    created_at=made)
    DeliveryAttempt.objects.create(notification=n, at=made, delivered=status == "delivered")
    return n


@pytest.mark.parametrize("batch", [1, 5000])
def test_prune_notifications__ended_and_old_only_with_their_attempts(settings, batch):
    settings.NOTIFICATION_RETENTION_DAYS = 30
    old_ok, old_failed = _notification("a", "delivered", 40), _notification("b", "failed", 31)
    kept = [_notification("c", "pending", 400), _notification("d", "delivered", 29), _notification("e", "failed", 1)]
    assert retention.prune_notifications(batch=batch) == 2
    assert set(Notification.objects.values_list("pk", flat=True)) == {n.pk for n in kept}
    assert not DeliveryAttempt.objects.filter(notification_id__in=[old_ok.pk, old_failed.pk]).exists()
    assert DeliveryAttempt.objects.count() == 3
    assert retention.prune_notifications(batch=batch) == 0


def test_prune_alert_events__old_ones_except_each_rules_latest(settings, envs):
    settings.ALERT_EVENT_RETENTION_DAYS = 30
    now = timezone.now()

    def rule(name):
        return AlertRule.objects.create(environment=envs["production"], name=name, condition="up == 0")

    def event(r, age_days):
        return AlertEvent.objects.create(rule=r, at=now - dt.timedelta(days=age_days), change="firing",
                                         from_state="pending", to_state="firing")

    busy, quiet = rule("busy"), rule("quiet")
    busy_old = [event(busy, 100), event(busy, 50)]
    busy_recent = event(busy, 2)
    quiet_old = [event(quiet, 200), event(quiet, 90)]  # nothing since: its latest says why it is in its state
    assert alerting.prune_events(batch=1) == 3
    left = set(AlertEvent.objects.values_list("pk", flat=True))
    assert left == {busy_recent.pk, quiet_old[-1].pk}
    assert not left & {e.pk for e in busy_old}
    assert alerting.prune_events() == 0


def test_beat__both_prunes_scheduled(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"pmrelease.tasks.notifications_prune", "monitoring.tasks.prune_alert_events"} <= tasks
