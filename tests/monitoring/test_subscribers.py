"""E-mail double opt-in, one-click unsubscribe with signed tokens, webhooks, Celery delivery with retries."""
import datetime as dt

import httpx
import pytest
from django.core import mail, signing
from django.db import transaction

from monitoring import tasks
from monitoring.models import Delivery, Subscriber
from monitoring.statuspage import incidents, subscribers
from monitoring.statuspage import status as st
from pmrelease import errors

pytestmark = pytest.mark.django_db


def _subscribe(client, email="reader@example.com", components=()):
    return client.post("/status/subscriptions/", {"email": email, "components": [c.pk for c in components]})


def _confirm_link(subscriber):
    subscribers.send_confirmation_email(subscriber=subscriber)
    body = mail.outbox[-1].body
    return next(line for line in body.splitlines() if "/subscriptions/confirm/" in line).split("testserver")[1]


def test_subscribe__double_opt_in__active_only_after_confirming(client, components):
    response = _subscribe(client, components=[components["REST API"]])
    assert response.status_code == 200 and b"Check your inbox" in response.content
    subscriber = Subscriber.objects.get(email="reader@example.com")
    assert not subscriber.is_active
    link = _confirm_link(subscriber)
    assert client.get(link).status_code == 200 and not Subscriber.objects.get(pk=subscriber.pk).is_active
    assert client.post(link).status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.is_active and list(subscriber.components.all()) == [components["REST API"]]


def test_subscribe__invalid_address__400(client, db):
    assert _subscribe(client, email="not-an-address").status_code == 400
    assert not Subscriber.objects.exists()


def test_confirm__forged_token__refused(client, components):
    _subscribe(client)
    subscriber = Subscriber.objects.get()
    forged = signing.dumps({"s": subscriber.pk, "p": "confirm", "c": subscriber.created_at.timestamp()},
                           salt="something-else", compress=True)
    assert client.post(f"/status/subscriptions/confirm/{forged}/").status_code == 400
    tampered = subscribers.make_token(subscriber, "confirm")[:-2] + "xx"
    assert client.post(f"/status/subscriptions/confirm/{tampered}/").status_code == 400
    unsub_token = subscribers.make_token(subscriber, "unsubscribe")  # right signature, wrong purpose
    assert client.post(f"/status/subscriptions/confirm/{unsub_token}/").status_code == 400
    assert not Subscriber.objects.get().is_active


def test_confirm__expired_token__refused(client, components, monkeypatch):
    _subscribe(client)
    token = subscribers.make_token(Subscriber.objects.get(), "confirm")
    monkeypatch.setattr(subscribers, "CONFIRM_MAX_AGE", dt.timedelta(seconds=-1))
    response = client.post(f"/status/subscriptions/confirm/{token}/")
    assert response.status_code == 400 and b"expired" in response.content
    assert not Subscriber.objects.get().is_active


def test_unsubscribe__one_click_post__unsubscribed_and_token_reuse_harmless(client, components):
    subscriber = Subscriber.objects.create(kind="email", email="a@example.com")
    subscribers.subscription_confirm(token=subscribers.make_token(subscriber, "confirm"))
    token = subscribers.make_token(subscriber, "unsubscribe")
    response = client.post(f"/status/subscriptions/unsubscribe/{token}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Subscriber.objects.get(pk=subscriber.pk).unsubscribed_at is not None
    assert client.post(f"/status/subscriptions/unsubscribe/{token}/").status_code == 200


def test_unsubscribe__forged_or_expired_token__refused(client, components, settings):
    subscriber = Subscriber.objects.create(kind="email", email="a@example.com")
    forged = signing.dumps({"s": subscriber.pk, "p": "unsubscribe", "c": subscriber.created_at.timestamp()},
                           key="not-our-secret-key-" * 3, salt=subscribers.TOKEN_SALT, compress=True)
    assert client.post(f"/status/subscriptions/unsubscribe/{forged}/").status_code == 400
    token = subscribers.make_token(subscriber, "unsubscribe")
    settings.STATUS_UNSUBSCRIBE_TOKEN_DAYS = -1
    assert client.post(f"/status/subscriptions/unsubscribe/{token}/").status_code == 400
    assert Subscriber.objects.get(pk=subscriber.pk).unsubscribed_at is None


def test_resubscribe__after_unsubscribing__old_tokens_stop_working(client, components):
    _subscribe(client)
    old = Subscriber.objects.get()
    old_token = subscribers.make_token(old, "unsubscribe")
    subscribers.unsubscribe(token=old_token)
    _subscribe(client)
    assert client.post(f"/status/subscriptions/unsubscribe/{old_token}/").status_code == 400


def _active(email, components=()):
    subscriber = Subscriber.objects.create(kind="email", email=email)
    subscriber.components.set(components)
    subscribers.subscription_confirm(token=subscribers.make_token(subscriber, "confirm"))
    return subscriber


def test_notification_fan_out__component_filter__only_interested_subscribers(components, ops, monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.deliver, "delay", lambda pk: sent.append(pk))
    _active("all@example.com")
    _active("api@example.com", [components["REST API"]])
    _active("mx@example.com", [components["Inbound MX"]])
    Subscriber.objects.create(kind="email", email="pending@example.com")
    incident = incidents.incident_create(name="API down", body="Down.", by=ops,
                                         components={components["REST API"]: st.MAJOR})
    with transaction.atomic():
        created = subscribers.notification_fan_out(kind="incident", obj_id=incident.pk, event="e1")
    assert {d.subscriber.email for d in Delivery.objects.filter(pk__in=created)} == {"all@example.com",
                                                                                     "api@example.com"}
    assert subscribers.notification_fan_out(kind="incident", obj_id=incident.pk, event="e1") == []  # redelivered


def test_deliver__email__sent_with_one_click_unsubscribe_headers(components, ops):
    _active("all@example.com")
    incident = incidents.incident_create(name="API down", body="Down hard.", by=ops,
                                         components={components["REST API"]: st.MAJOR})
    subscribers.notification_fan_out(kind="incident", obj_id=incident.pk, event="e1")
    delivery = Delivery.objects.get()
    mail.outbox.clear()
    assert tasks.deliver(delivery.pk) == "sent"
    message = mail.outbox[0]
    assert "API down" in message.subject and "Down hard." in message.body
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/status/subscriptions/unsubscribe/" in message.extra_headers["List-Unsubscribe"]
    assert tasks.deliver(delivery.pk) == "sent" and len(mail.outbox) == 1  # idempotent


def test_deliver__webhook_failing_then_ok__retried_then_sent(components, ops, httpserver):
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("no", status=503)
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("ok", status=200)
    subscribers.webhook_subscriber_create(url=httpserver.url_for("/hook"), by=ops)
    incident = incidents.incident_create(name="API down", body="Down.", by=ops,
                                         components={components["REST API"]: st.MAJOR})
    subscribers.notification_fan_out(kind="incident", obj_id=incident.pk, event="e1")
    delivery = Delivery.objects.get()
    with pytest.raises(subscribers.DeliveryFailed):
        subscribers.delivery_send(delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1 and "503" in delivery.last_error
    assert subscribers.delivery_send(delivery=delivery) == "sent"
    payload = httpserver.log[-1][0].get_json()
    assert payload["incident"]["name"] == "API down" and payload["incident"]["status"] == "investigating"


def test_deliver__final_attempt_fails__marked_failed_not_raised(components, ops, monkeypatch):
    sub = subscribers.webhook_subscriber_create(url="http://127.0.0.1:1/hook", by=ops)
    delivery = Delivery.objects.create(subscriber=sub, event="x", subject="s", body="b", payload={})

    def refuse(*a, **k):
        raise httpx.ConnectError("refused")

    monkeypatch.setattr(httpx, "post", refuse)
    assert subscribers.delivery_send(delivery=delivery, final_attempt=True) == "failed"
    assert Delivery.objects.get(pk=delivery.pk).status == "failed"


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/",
                                 "http://localhost/hook", "http://[::1]/", "http://10.0.0.7/hook", "ftp://x/"])
def test_webhook_url__internal_address__refused(settings, ops, url):
    settings.STATUS_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(errors.ValidationFailed, match="webhook URL refused"):
        subscribers.webhook_subscriber_create(url=url, by=ops)


def test_webhook_delivery__address_turned_private__not_sent(settings, components, ops, httpserver):
    sub = subscribers.webhook_subscriber_create(url=httpserver.url_for("/hook"), by=ops)
    settings.STATUS_WEBHOOK_ALLOW_PRIVATE = False  # e.g. DNS now points the name at an internal address
    delivery = Delivery.objects.create(subscriber=sub, event="incident-1-private", subject="s", body="b",
                                       payload={"x": 1})
    assert subscribers.delivery_send(delivery=delivery, final_attempt=True) == "failed"
    assert "not a public address" in Delivery.objects.get(pk=delivery.pk).last_error
    assert len(httpserver.log) == 0


def test_subscribe__bad_component_ids_and_long_address__400_not_500(client, components):
    for data in ({"email": "a@example.com", "components": "\u00b2"},
                 {"email": "a@example.com", "components": "9" * 30},
                 {"email": ("x" * 250) + "@example.com"}):
        response = client.post("/status/subscriptions/", data)
        assert response.status_code == 400, (data, response.status_code)


def test_subscribe__repeated_for_a_pending_address__one_confirmation(components, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for _ in range(5):
            subscribers.subscribe_email(email="victim@example.com")
    assert len(callbacks) == 1
