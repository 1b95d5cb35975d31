"""Signed outbound webhooks, a channel kind of the delivery engine: the receiver below is written from the
documentation of pmrelease.webhooks alone (no import of it); retries on a failing endpoint with every attempt's
status and time recorded; redelivery; public addresses only unless allowed; a failing endpoint never delays a
deployment (nothing is sent in its transaction)."""
import hashlib
import hmac
import json
import time

import pytest
from werkzeug import Response

from pmrelease import delivery, errors
from pmrelease.models import DeliveryAttempt, Notification
from releases.deploy import services as deployments

pytestmark = pytest.mark.django_db

SECRET = "whsec-0123456789abcdef"


def receive(request, secret=SECRET, window=300):
    """A receiver as the docs describe it: HMAC-SHA256 over "<t>." + raw body, constant-time compare, 5 minutes."""
    fields = dict(part.split("=", 1) for part in request.headers["X-PMR-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + request.get_data(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"]), "signature mismatch"
    assert abs(time.time() - int(fields["t"])) <= window, "outside the replay window"
    return json.loads(request.get_data())


@pytest.fixture
def hook(users, envs, settings, httpserver):
    settings.DELIVERY_WEBHOOK_ALLOW_PRIVATE = True  # the test receiver listens on 127.0.0.1
    channel = delivery.channel_save(data={"name": "ci-hook", "kind": "webhook", "url": httpserver.url_for("/hook"),
                                          "secret": SECRET}, by=users["admin"])
    for event in ("deployment.started", "deployment.step_changed", "gate.result", "release.approved"):
        delivery.subscription_save(channel=channel, event=event, by=users["admin"])
    return channel


def deliver_all():
    for pk in Notification.objects.filter(status="pending").order_by("id").values_list("pk", flat=True):
        delivery.send(notification_id=pk)


def test_webhook__deployment_events__signed_payloads_a_receiver_verifies(users, envs, sim_targets, seed_gates,
                                                                        approved_release, hook, httpserver,
                                                                        django_capture_on_commit_callbacks):
    received = []

    def handler(request):
        received.append((request.headers["X-PMR-Event"], request.headers["X-PMR-Delivery"], receive(request)))
        return Response("ok", status=204)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    with django_capture_on_commit_callbacks():
        release = approved_release()
        dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                            dispatch=False)
        deployments.gate_report(deployment=dep, gate=seed_gates["Unit Tests"], by=users["ops"], passed=4,
                                failed=0, dispatch=False)
    assert received == []  # nothing is sent inside the operations: the worker sends
    deliver_all()
    events = [event for event, _, _ in received]
    assert events[:2] == ["release.approved", "deployment.started"] and "gate.result" in events
    _, delivery_id, started = received[1]
    assert started["event"] == "deployment.started" and started["id"] == delivery_id
    assert set(started) == {"schema_version", "id", "event", "created_at", "environment", "title", "severity",
                            "data"}
    assert started["data"]["deployment"] == dep.pk and started["data"]["version"] == release.version
    gate = next(body for event, _, body in received if event == "gate.result")
    assert gate["data"]["gate"]["slug"] == "unit-tests" and gate["data"]["gate"]["attempt"] == 1
    attempt = DeliveryAttempt.objects.filter(delivered=True).first()
    assert attempt.response_status == 204 and attempt.duration_ms >= 0


def test_webhook__tampered_or_old_signature__receiver_refuses(hook, httpserver):
    from pmrelease import webhooks

    body = webhooks.body_bytes({"a": 1})
    header = webhooks.signature(SECRET, body, time.time())
    assert webhooks.verify(SECRET, body, header) == {"a": 1}
    with pytest.raises(webhooks.InvalidSignature):
        webhooks.verify(SECRET, body + b" ", header)
    with pytest.raises(webhooks.InvalidSignature):
        webhooks.verify(SECRET, body, webhooks.signature(SECRET, body, time.time() - 301))
    with pytest.raises(webhooks.InvalidSignature):
        webhooks.verify("another-secret-0000", body, header)


def test_webhook__failing_endpoint__retried_each_attempt_recorded_then_redelivered(users, hook, httpserver):
    httpserver.expect_ordered_request("/hook").respond_with_data("down", status=503)
    httpserver.expect_ordered_request("/hook").respond_with_data("down", status=500)
    (pk,) = delivery.notify(event="release.approved", title="t", body="b", data={"x": 1}, key="k-1")
    with pytest.raises(delivery.DeliveryFailed, match="HTTP 503"):
        delivery.send(notification_id=pk)  # the task retries this one with backoff
    assert delivery.send(notification_id=pk, final_attempt=True) == "failed"
    assert list(DeliveryAttempt.objects.values_list("delivered", "response_status")) == [(False, 503),
                                                                                         (False, 500)]
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    delivery.redeliver(notification=Notification.objects.get(pk=pk), by=users["admin"])
    assert delivery.send(notification_id=pk) == "delivered"
    assert DeliveryAttempt.objects.order_by("-id").first().response_status == 200


def test_webhook_channel__private_address_refused_unless_allowed_and_secret_required(users, settings):
    settings.DELIVERY_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(errors.ValidationFailed) as refused:
        delivery.channel_save(data={"name": "internal", "kind": "webhook", "url": "http://127.0.0.1:9/h",
                                    "secret": SECRET}, by=users["admin"])
    assert "not a public address" in str(refused.value.field_errors["url"])
    with pytest.raises(errors.ValidationFailed) as no_secret:
        delivery.channel_save(data={"name": "nosecret", "kind": "webhook", "url": "http://93.184.215.14/h"},
                              by=users["admin"])
    assert "secret" in no_secret.value.field_errors
    channel = delivery.channel_save(data={"name": "public", "kind": "webhook", "url": "http://93.184.215.14/h",
                                          "secret": SECRET}, by=users["admin"])
    assert SECRET not in json.dumps(list(type(channel).objects.values()), default=str)


def test_openapi__webhook_payload_component(api, users):
    schema = api(users["admin"]).get("/api/schema/?format=json").json()
    component = schema["components"]["schemas"]["WebhookEvent"]
    assert set(component["required"]) == {"schema_version", "id", "event", "created_at", "environment", "title",
                                          "severity", "data"}
    assert set(delivery.EVENTS) <= set(component["properties"]["event"]["enum"])
    post = schema["paths"]["/api/v1/deployments/"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"]) and "422" in post["responses"]
