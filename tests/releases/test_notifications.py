"""The releases app's events on the delivery engine: deployments, approvals, trigger alerts. A failing channel
never blocks or slows a deployment."""
import threading
import time

import pytest
from django.core import mail

from pmrelease import delivery
from pmrelease.models import Notification
from pmrelease.tasks import deliver_notification
from releases.deploy import engine
from releases.deploy import services as deployments

pytestmark = pytest.mark.django_db


@pytest.fixture
def hanging_endpoint():
    """An HTTP endpoint that accepts connections and never answers (the worst a channel can do)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def deliver_all(**kw):
    for pk in Notification.objects.filter(status="pending").values_list("pk", flat=True):
        deliver_notification.apply(args=(pk,), **kw)


def test_deployment__failing_and_hanging_channels__not_delayed_and_events_recorded(
        users, envs, sim_targets, approved_release, hanging_endpoint, settings, monkeypatch,
        django_capture_on_commit_callbacks):
    port, accepted = hanging_endpoint
    for name, url in (("hangs", f"json://127.0.0.1:{port}/hook"), ("refuses", "json://127.0.0.1:9/hook")):
        channel = delivery.channel_save(data={"name": name, "url": url}, by=users["admin"])
        delivery.subscription_save(channel=channel, event="*", environment="development", by=users["admin"])
    # and the broker itself refusing the hand-over: still nothing reaches the deployment
    monkeypatch.setattr(deliver_notification, "apply_async", lambda *a, **k: (_ for _ in ()).throw(OSError("down")))
    release = approved_release()
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                            strategy="rolling-update", dispatch=False)
    dep = engine.run_inline(dep.pk)
    elapsed = time.monotonic() - started
    assert dep.status == "succeeded" and elapsed < 5, elapsed
    assert accepted == []  # no channel was contacted on the deployment's path
    got = sorted(Notification.objects.values_list("event", "channel__name"))
    assert got == [("deployment.started", "hangs"), ("deployment.started", "refuses"),
                   ("deployment.succeeded", "hangs"), ("deployment.succeeded", "refuses")]
    body = Notification.objects.filter(event="deployment.succeeded").first()
    assert release.version in body.title and body.data["deployment"] == dep.pk and body.severity == "success"
    # the worker's side: the refusing channel's attempt fails fast and is recorded
    settings.DELIVERY_MAX_RETRIES = 0
    refused = Notification.objects.get(event="deployment.started", channel__name="refuses")
    deliver_notification.apply(args=(refused.pk,))
    refused.refresh_from_db()
    assert refused.status == "failed" and refused.delivery_attempts.get().error


def test_deployment__rolled_back__rolled_back_event_says_so(users, envs, sim_targets, approved_release):
    channel = delivery.channel_save(data={"name": "ops", "url": "json://127.0.0.1:9/x"}, by=users["admin"])
    delivery.subscription_save(channel=channel, event="deployment.rolled_back", by=users["admin"])
    release = approved_release()
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        strategy="rolling-update", dispatch=False,
                                        parameters={"simulate": {"fail_deploy": True}})
    dep = engine.run_inline(dep.pk)
    assert dep.status == "rolled_back"
    notification = Notification.objects.get(event="deployment.rolled_back")
    assert "was rolled back automatically" in notification.title
    assert notification.data["automatic_rollback"] is True and "fail_deploy" in notification.body


def test_release_create__approvers_e_mailed_through_delivery(users, envs, django_capture_on_commit_callbacks):
    from releases.tasks import notify_approvers
    from tests.factories import make_release

    channel = delivery.channel_save(data={"name": "approvals", "url": "json://127.0.0.1:9/x"}, by=users["admin"])
    delivery.subscription_save(channel=channel, event="approval.requested", environment="staging", by=users["admin"])
    release = make_release(by=users["planner"], envs=[envs["staging"]])
    assert notify_approvers(release.pk, release.approval_round) == 3
    assert notify_approvers(release.pk, release.approval_round) == 3  # a redelivered task: nothing new
    people = Notification.objects.get(channel=None)
    assert Notification.objects.filter(channel=channel).count() == 1
    deliver_notification.apply(args=(people.pk,))
    assert set(mail.outbox[0].to) == {"approver@example.com", "approver2@example.com", "approver3@example.com"}
    assert f"Release {release.version} awaits your approval" in mail.outbox[0].subject
