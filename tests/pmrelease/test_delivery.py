"""The one delivery engine (pmrelease.delivery) on apprise, and the secrets at rest under it (pmrelease.crypto)."""
import base64
import json

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured

from pmrelease import crypto, delivery, errors
from pmrelease.models import AuditEvent, Channel, DeliveryAttempt, Notification
from pmrelease.tasks import deliver_notification

pytestmark = pytest.mark.django_db

SECRET_URL = "slack://T1234ABCD/B5678EFGH/s3cr3tT0kenValue1234567"


def key(kid, byte):
    return f"{kid}:{base64.urlsafe_b64encode(bytes([byte]) * 32).decode()}"


@pytest.fixture
def admin_user(make_user):
    return make_user("root", superuser=True)


def json_channel(admin_user, url, name="hook", events=("*",), environment=""):
    channel = delivery.channel_save(data={"name": name, "url": url}, by=admin_user)
    for event in events:
        delivery.subscription_save(channel=channel, event=event, environment=environment, by=admin_user)
    return channel


# --- crypto ---------------------------------------------------------------------------------------------------
def test_crypto__round_trip__sealed_value_opens_only_in_its_context(settings):
    settings.ENCRYPTION_KEYS = key("k1", 1)
    token = crypto.encrypt("hello", context="channel:a")
    assert "hello" not in token and token.startswith("pmr1:k1:")
    assert crypto.decrypt(token, context="channel:a") == "hello"
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(token, context="channel:b")
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(tampered, context="channel:a")


def test_crypto__rotation__old_tokens_open_and_rewrap_moves_them_to_the_new_key(settings):
    settings.ENCRYPTION_KEYS = key("k1", 1)
    token = crypto.encrypt("s3cret", context="c")
    settings.ENCRYPTION_KEYS = f"{key('k2', 2)},{key('k1', 1)}"
    assert crypto.decrypt(token, context="c") == "s3cret"
    moved = crypto.rewrap(token, context="c")
    assert crypto.key_id(moved) == "k2" and crypto.rewrap(moved, context="c") == moved
    settings.ENCRYPTION_KEYS = key("k2", 2)  # the old key retired
    assert crypto.decrypt(moved, context="c") == "s3cret"
    with pytest.raises(crypto.DecryptionFailed, match="k1"):
        crypto.decrypt(token, context="c")


def test_crypto__malformed_keys__refused_with_the_expected_form():
    with pytest.raises(ImproperlyConfigured, match="32 random bytes"):
        crypto.parse_keys("k1:short")


# --- channels -------------------------------------------------------------------------------------------------
def test_channel_save__url__stored_encrypted_and_never_shown_back(admin_user):
    channel = delivery.channel_save(data={"name": "slack", "url": SECRET_URL}, by=admin_user)
    channel.refresh_from_db()
    assert "s3cr3t" not in channel.url_encrypted and channel.url_hint == "slack://"
    assert delivery.channel_url(channel) == SECRET_URL
    shown = delivery.describe(channel)
    assert shown.startswith("slack://…") and "s3cr3t" not in shown
    trail = json.dumps([[e.before, e.after] for e in AuditEvent.objects.for_object(channel)])
    assert "s3cr3t" not in trail and "slack://" in trail


def test_channel_admin__change_page__url_not_rendered(admin_user, client):
    channel = delivery.channel_save(data={"name": "slack", "url": SECRET_URL}, by=admin_user)
    client.force_login(admin_user)
    page = client.get(f"/admin/pmrelease/channel/{channel.pk}/change/").content.decode()
    assert "stored encrypted" in page and "s3cr3t" not in page and channel.url_encrypted not in page


def test_channel_admin__add__goes_through_the_service(admin_user, client):
    client.force_login(admin_user)
    response = client.post("/admin/pmrelease/channel/add/", {
        "name": "ops-hook", "description": "", "url": "json://127.0.0.1:9/x", "url_env": "", "enabled": "on",
        "subscriptions-TOTAL_FORMS": "1", "subscriptions-INITIAL_FORMS": "0", "subscriptions-MIN_NUM_FORMS": "0",
        "subscriptions-MAX_NUM_FORMS": "1000", "subscriptions-0-event": "deployment.failed",
        "subscriptions-0-environment": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get(name="ops-hook")
    assert delivery.channel_url(channel) == "json://127.0.0.1:9/x"
    assert list(channel.subscriptions.values_list("event", flat=True)) == ["deployment.failed"]
    assert AuditEvent.objects.filter(action="channel.create", object_id=str(channel.pk)).exists()


@pytest.mark.parametrize(("data", "field", "says"), [
    ({"name": "x", "url": "nonsense"}, "url", "apprise URL"),
    ({"name": "x", "url": "unknownscheme://abc"}, "url", "apprise does not accept"),
    ({"name": "x"}, "url", "url_env"),
    ({"name": "x", "url_env": "lower-case"}, "url_env", "environment variable"),
    ({"name": "x", "url_env": "HOOK_URL", "url": "json://h/x"}, "url", "not both"),
])
def test_channel_save__bad_input__400_naming_the_field(admin_user, data, field, says):
    with pytest.raises(errors.ValidationFailed) as exc:
        delivery.channel_save(data=data, by=admin_user)
    assert says in " ".join(exc.value.field_errors[field])


def test_channel_save__not_an_administrator__403(make_user):
    with pytest.raises(errors.PermissionDenied):
        delivery.channel_save(data={"name": "x", "url": "json://h/x"}, by=make_user("ops1", "operations"))


def test_subscription_save__unknown_event_or_environment__400(admin_user):
    channel = delivery.channel_save(data={"name": "x", "url": "json://h/x"}, by=admin_user)
    with pytest.raises(errors.ValidationFailed) as exc:
        delivery.subscription_save(channel=channel, event="deployment.exploded", environment="nowhere",
                                   by=admin_user)
    assert set(exc.value.field_errors) == {"event", "environment"}


def test_channel_from_environment_variable__url_read_at_send_time(admin_user, httpserver, monkeypatch):
    httpserver.expect_request("/env-hook", method="POST").respond_with_data("ok")
    channel = delivery.channel_save(data={"name": "envhook", "url_env": "PMR_TEST_HOOK_URL"}, by=admin_user)
    assert delivery.describe(channel) == "from $PMR_TEST_HOOK_URL (not set here)"
    [pk] = delivery.notify(event="channel.test", title="t", body="b", channels=[channel])
    assert delivery.send(notification_id=pk) == "failed"  # not set: a permanent failure, recorded
    assert "PMR_TEST_HOOK_URL is not set" in Notification.objects.get(pk=pk).last_error
    monkeypatch.setenv("PMR_TEST_HOOK_URL", f"json://127.0.0.1:{httpserver.port}/env-hook")
    [pk] = delivery.notify(event="channel.test", title="t", body="b", channels=[channel], key="again")
    assert delivery.send(notification_id=pk) == "delivered" and len(httpserver.log) == 1


# --- delivering -----------------------------------------------------------------------------------------------
def test_notify__json_channel__arrives_with_the_right_body(admin_user, httpserver, django_capture_on_commit_callbacks):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    json_channel(admin_user, f"json://127.0.0.1:{httpserver.port}/hook", events=["deployment.failed"],
                 environment="")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ids = delivery.notify(event="deployment.failed", environment="staging", title="Deploy failed",
                              body="Deployment #7 of 1.2.3 failed", severity="failure", key="dep-7-failed")
    assert len(ids) == 1 and len(callbacks) == 1 and httpserver.log == []  # nothing sent before the worker runs
    result = deliver_notification.apply(args=(ids[0],))
    assert result.get() == "delivered"
    request = httpserver.log[0][0]
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == {"version": "1.0", "title": "Deploy failed",
                                  "message": "Deployment #7 of 1.2.3 failed", "attachments": [], "type": "failure"}
    notification = Notification.objects.get(pk=ids[0])
    assert notification.status == "delivered" and notification.attempts == 1 and notification.delivered_at
    assert [(a.delivered, a.error) for a in notification.delivery_attempts.all()] == [(True, "")]


def test_notify__subscriptions__by_event_and_environment(admin_user, envs):
    everything = json_channel(admin_user, "json://h/a", name="all")
    staging_failures = json_channel(admin_user, "json://h/b", name="stagefail", events=["deployment.failed"],
                                    environment="staging")
    json_channel(admin_user, "json://h/c", name="off", events=["deployment.failed"])
    Channel.objects.filter(name="off").update(enabled=False)
    delivery.notify(event="deployment.failed", environment="staging", title="t", body="b", key="k1")
    delivery.notify(event="deployment.failed", environment="production", title="t", body="b", key="k2")
    delivery.notify(event="deployment.started", environment="staging", title="t", body="b", key="k3")
    got = sorted((n.key, n.channel.name) for n in Notification.objects.select_related("channel"))
    assert got == [("k1", "all"), ("k1", "stagefail"), ("k2", "all"), ("k3", "all")]
    assert everything.pk != staging_failures.pk


def test_notify__same_key_twice__one_notification_per_channel(admin_user):
    json_channel(admin_user, "json://h/a")
    first = delivery.notify(event="deployment.started", title="t", body="b", key="same", recipients=["a@x.org"])
    again = delivery.notify(event="deployment.started", title="t", body="b", key="same", recipients=["a@x.org"])
    assert len(first) == 2 and again == [] and Notification.objects.count() == 2


def test_deliver__failing_endpoint__retried_with_backoff_each_attempt_recorded_then_failed(
        admin_user, httpserver, settings):
    settings.DELIVERY_MAX_RETRIES = 2
    httpserver.expect_request("/down", method="POST").respond_with_data("nope", status=500)
    json_channel(admin_user, f"json://127.0.0.1:{httpserver.port}/down")
    [pk] = delivery.notify(event="alert.firing", title="High Error Rate", body="firing", key="a-1")
    deliver_notification.apply(args=(pk,))  # eager: the task's retries run at once, each recorded
    notification = Notification.objects.get(pk=pk)
    attempts = list(notification.delivery_attempts.all())
    assert len(httpserver.log) == 3 and len(attempts) == 3 and notification.attempts == 3
    assert notification.status == "failed" and not any(a.delivered for a in attempts)
    assert all("500" in a.error or "Internal Server Error" in a.error for a in attempts), attempts[0].error
    assert [delivery.backoff(n) for n in range(3)] == [30.0, 60.0, 120.0] and delivery.backoff(20) == 3600.0


def test_deliver__failing_then_answering__retried_then_delivered(admin_user, httpserver, settings):
    settings.DELIVERY_MAX_RETRIES = 3
    httpserver.expect_ordered_request("/flaky", method="POST").respond_with_data("no", status=503)
    httpserver.expect_ordered_request("/flaky", method="POST").respond_with_data("ok", status=200)
    json_channel(admin_user, f"json://127.0.0.1:{httpserver.port}/flaky")
    [pk] = delivery.notify(event="alert.firing", title="t", body="b", key="a-2")
    deliver_notification.apply(args=(pk,))
    notification = Notification.objects.get(pk=pk)
    assert notification.status == "delivered"
    assert [a.delivered for a in notification.delivery_attempts.all()] == [False, True]


def test_deliver__unreachable_endpoint__error_recorded_and_retry_raised(admin_user, httpserver):
    json_channel(admin_user, "json://127.0.0.1:9/closed")  # nothing listens on port 9
    [pk] = delivery.notify(event="alert.firing", title="t", body="b", key="a-3")
    with pytest.raises(delivery.DeliveryFailed):
        delivery.send(notification_id=pk)
    attempt = DeliveryAttempt.objects.get(notification_id=pk)
    assert not attempt.delivered and "Connection error" in attempt.error
    assert Notification.objects.get(pk=pk).status == "pending"  # the task retries it


def test_redeliver__failed_notification__pending_again_and_audited(admin_user, httpserver):
    httpserver.expect_request("/later", method="POST").respond_with_data("ok")
    channel = json_channel(admin_user, "json://127.0.0.1:9/closed")
    [pk] = delivery.notify(event="alert.firing", title="t", body="b", key="a-4")
    delivery.send(notification_id=pk, final_attempt=True)
    notification = Notification.objects.get(pk=pk)
    assert notification.status == "failed"
    delivery.channel_save(channel=channel, data={"url": f"json://127.0.0.1:{httpserver.port}/later"}, by=admin_user)
    delivery.redeliver(notification=notification, by=admin_user)
    assert delivery.send(notification_id=pk) == "delivered"
    assert AuditEvent.objects.filter(action="notification.redeliver", object_id=str(pk)).exists()
    with pytest.raises(errors.TransitionNotAllowed):
        delivery.redeliver(notification=Notification.objects.get(pk=pk), by=admin_user)


def test_notify__people__e_mail_through_the_same_engine():
    [pk] = delivery.notify(event="flag.stale", title="Stale flags", body="- old: unused", recipients=["dev@x.org"])
    assert delivery.send(notification_id=pk) == "delivered"
    assert mail.outbox[-1].to == ["dev@x.org"] and mail.outbox[-1].subject == "Stale flags"


def test_notify__broken_input__logged_never_raised():
    assert delivery.notify(event="no.such.event", title="t", body="b") == []
