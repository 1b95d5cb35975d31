"""Change requests' transitions as signed webhook events (changes.notifications on pmrelease.delivery): each
transition one event with the documented payload (WebhookChangeData), delivered only to the channels subscribed
in one of the change's environments, recorded in the transition's transaction and sent after commit, so a failing
endpoint (or broker) never blocks nor rolls back a transition."""
import datetime as dt
import hashlib
import hmac
import json

import pytest
from django.db import transaction
from django.utils import timezone
from werkzeug import Response

from changes import services
from changes.models import ChangeApproval, ChangeRequest
from pmrelease import delivery
from pmrelease.models import AuditEvent, Notification
from pmrelease.schema import WEBHOOK_CHANGE_DATA, WEBHOOK_EVENT
from pmrelease.tasks import deliver_notification, fan_out_notifications
from tests.factories import approve_change

pytestmark = pytest.mark.django_db

SECRET = "whsec-change-0123456789"
CHANGE_EVENTS = [e for e in delivery.EVENTS if e.startswith("change.")]


def receive(request):
    fields = dict(part.split("=", 1) for part in request.headers["X-PMR-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + request.get_data(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"]), "signature mismatch"
    return json.loads(request.get_data())


@pytest.fixture
def channel(users, settings, httpserver):
    """subscribe(events, environment="") -> a signed-webhook channel to the test receiver."""
    settings.DELIVERY_WEBHOOK_ALLOW_PRIVATE = True
    made = []

    def subscribe(events=CHANGE_EVENTS, environment="", name=None, path="/hook"):
        hook = delivery.channel_save(data={"name": name or f"hook-{len(made)}", "kind": "webhook",
                                           "url": httpserver.url_for(path), "secret": SECRET}, by=users["admin"])
        for event in events:
            delivery.subscription_save(channel=hook, event=event, environment=environment, by=users["admin"])
        made.append(hook)
        return hook

    return subscribe


@pytest.fixture
def received(httpserver):
    got = []

    def handler(request):
        got.append((request.headers["X-PMR-Event"], request.headers["X-PMR-Delivery"], receive(request)))
        return Response("", status=204)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    return got


def deliver_all():
    for pk in Notification.objects.filter(status="pending").order_by("id").values_list("pk", flat=True):
        delivery.send(notification_id=pk)


def transitions(change):
    """The transitions the audit trail recorded for ``change``."""
    from changes.notifications import EVENTS

    return list(AuditEvent.objects.filter(object_type="changes.changerequest", object_id=str(change.pk),
                                          action__in=[f"changerequest.{name}" for name in EVENTS]).order_by("id")
                .values_list("action", flat=True))


def conforms(value, schema):
    """The documented shape (OpenAPI 3.0: ``nullable``) of ``value``."""
    if value is None:
        return schema.get("nullable", False) or None in schema.get("enum", [])
    kinds = {"object": dict, "string": str, "integer": int, "array": list}
    if not isinstance(value, kinds[schema["type"]]) or ("enum" in schema and value not in schema["enum"]):
        return False
    if schema["type"] == "object" and "required" in schema:
        return set(value) == set(schema["required"]) and all(
            conforms(value[k], s) for k, s in schema["properties"].items())
    if schema["type"] == "array":
        return all(conforms(item, schema["items"]) for item in value)
    return True


# --- each transition: exactly one event, the documented payload ---------------------------------------------------
def test_change_events__every_step__one_signed_event_per_transition_with_the_documented_payload(
        new_change, users, channel, received, django_capture_on_commit_callbacks):
    channel(environment="staging")
    with django_capture_on_commit_callbacks(execute=True):
        change = new_change("staging", by=users["dev"], title="Rotate the DKIM keys", type="security")
        services.change_submit(change=change, by=users["dev"])
        approve_change(change, users["approver"])  # security: the technical review and security approve
        services.change_schedule(change=change, by=users["ops"], planned_start=timezone.now() + dt.timedelta(hours=1))
        services.change_implement(change=change, by=users["ops"])
        services.change_validate(change=change, by=users["ops"])
        services.change_close(change=change, by=users["ops"], close_code="successful_with_issues", notes="slow")
    assert received == []  # nothing is sent by the operations themselves: the worker sends
    deliver_all()
    events = [event for event, _, _ in received]
    assert events == ["change.submitted", "change.in_review", "change.approved", "change.scheduled",
                      "change.implementing", "change.validating", "change.closed"]
    assert [f"changerequest.{body['data']['transition']}" for _, _, body in received] == transitions(change)
    ids = [delivery_id for _, delivery_id, _ in received]
    assert len(set(ids)) == len(ids) and all(body["id"] == i for (_, i, body) in received)
    for _, _, body in received:
        assert conforms(body, WEBHOOK_EVENT), body
        assert conforms(body["data"], WEBHOOK_CHANGE_DATA), body["data"]
        assert body["environment"] == "staging" and body["data"]["environments"] == ["staging"]
    by_event = {event: body for event, _, body in received}
    submitted = by_event["change.submitted"]["data"]
    assert submitted == {
        "change": change.pk, "number": f"CHG-{change.pk}", "title": "Rotate the DKIM keys", "type": "security",
        "class": "normal", "priority": "medium", "risk": submitted["risk"], "transition": "submit",
        "status_before": "draft", "status": "submitted", "actor": "dev", "reason": "submitted",
        "environments": ["staging"], "planned_start": None, "close_code": None, "approval_round": 1,
        "audit_event": AuditEvent.objects.get(action="changerequest.submit", object_id=str(change.pk)).pk,
        "link": f"http://127.0.0.1:8000/admin/changes/changerequest/{change.pk}/change/",
        "api_link": f"http://127.0.0.1:8000/api/v1/changes/{change.pk}/"}
    last_vote = ChangeApproval.objects.filter(change=change).order_by("-id").first()
    assert (by_event["change.approved"]["data"]["actor"], by_event["change.approved"]["severity"]) == (
        last_vote.approver.username, "success")
    assert by_event["change.in_review"]["data"]["actor"] == "approver"
    assert by_event["change.scheduled"]["data"]["planned_start"] is not None
    closed = by_event["change.closed"]
    assert closed["data"]["close_code"] == "successful_with_issues" and closed["data"]["status_before"] == "validating"
    assert f"CHG-{change.pk}" in closed["title"] and closed["severity"] == "success"


def test_change_events__reject_resubmit_reopen_cancel_fail__each_once_with_distinct_ids(
        new_change, users, envs, channel, received):
    channel(environment="staging")
    change = new_change("staging", by=users["dev"])
    services.change_submit(change=change, by=users["dev"])
    services.change_reject(change=change, by=users["approver"], reason="needs a rollback test")
    services.change_submit(change=change, by=users["dev"])  # the same transition again, in the next round
    services.change_approve(change=change, by=users["approver"])
    services.change_update(change=change, data={"duration": 90}, by=users["dev"])  # approved content edited
    services.change_cancel(change=change, by=users["dev"], reason="superseded")
    failing = new_change("staging", by=users["dev"])
    services.change_submit(change=failing, by=users["dev"])
    services.change_approve(change=failing, by=users["approver"])
    services.change_implement(change=failing, by=users["ops"])
    services.change_fail(change=failing, by=users["ops"], reason="the keys did not propagate")
    deliver_all()
    first = [(e, b["data"]["status_before"], b["data"]["status"]) for e, _, b in received
             if b["data"]["change"] == change.pk]
    assert first == [("change.submitted", "draft", "submitted"), ("change.rejected", "submitted", "draft"),
                     ("change.submitted", "draft", "submitted"), ("change.in_review", "submitted", "in_review"),
                     ("change.approved", "in_review", "approved"), ("change.reopened", "approved", "in_review"),
                     ("change.cancelled", "in_review", "cancelled")]
    assert len(first) == len(transitions(change))
    rejected = next(b for e, _, b in received if e == "change.rejected")
    assert (rejected["data"]["reason"], rejected["severity"], rejected["data"]["approval_round"]) == (
        "needs a rollback test", "warning", 2)
    failed = [b for e, _, b in received if b["data"]["change"] == failing.pk]
    assert [b["event"] for b in failed][-1] == "change.failed" and failed[-1]["severity"] == "failure"
    assert len(failed) == len(transitions(failing))
    ids = [i for _, i, _ in received]
    assert len(set(ids)) == len(ids)  # the second submission is another delivery, not a duplicate


def test_change_events__emergency_and_system_transitions__actor_and_class(users, envs, channel, received):
    channel(events=["change.approved", "change.implementing"], environment="production")
    change = services.change_create(by=users["planner"], change_class="emergency", data={
        "title": "Hotfix the bounce handler", "environments": [envs["production"]], "impact": "high",
        "implementation_plan": "", "rollback_plan": "", "testing_plan": ""})
    services.change_submit(change=change, by=users["planner"])
    services.change_approve(change=change, by=users["ops"])  # the emergency fast track: one operations approver
    services.change_implement(change=change, by=None)  # the portal itself
    deliver_all()
    assert [(e, b["data"]["class"], b["data"]["actor"]) for e, _, b in received] == [
        ("change.approved", "emergency", "ops"), ("change.implementing", "emergency", "system")]


# --- subscriptions per environment -----------------------------------------------------------------------------
def test_change_events__subscribed_per_environment__only_changes_touching_it(new_change, users, channel):
    production = channel(events=["change.submitted"], environment="production", name="prod-only")
    everywhere = channel(events=["change.submitted"], name="everywhere")
    anything = channel(events=[delivery.ANY], environment="staging", name="staging-any")
    staging_change = new_change("staging", by=users["dev"])
    services.change_submit(change=staging_change, by=users["dev"])
    got = sorted(Notification.objects.filter(data__change=staging_change.pk, event__startswith="change.")
                 .values_list("event", "channel__name"))
    assert got == [("change.submitted", "everywhere"), ("change.submitted", "staging-any")]
    assert not Notification.objects.filter(channel=production).exists()
    both = new_change("staging", "production", by=users["planner"])
    services.change_submit(change=both, by=users["planner"])
    rows = Notification.objects.filter(data__change=both.pk, event="change.submitted")
    # one delivery per channel, even when a channel is subscribed in several of the change's environments
    assert sorted(rows.values_list("channel__name", flat=True)) == ["everywhere", "prod-only", "staging-any"]
    assert set(rows.values_list("environment", flat=True)) == {""}  # several environments: data lists them
    assert rows.first().data["environments"] == ["production", "staging"]
    nowhere = new_change("development", by=users["dev"])
    services.change_submit(change=nowhere, by=users["dev"])
    assert list(Notification.objects.filter(data__change=nowhere.pk, event__startswith="change.")
                .values_list("channel", flat=True)) == [everywhere.pk]
    assert Notification.objects.filter(channel=anything, event__startswith="change.").count() == 2


def test_change_events__nobody_subscribed__nothing_recorded(new_change, users, channel):
    channel(events=["deployment.started"])
    change = new_change("staging", by=users["dev"])
    services.change_submit(change=change, by=users["dev"])
    assert not Notification.objects.filter(event__startswith="change.").exists()


# --- a failing endpoint, a failing broker, a rolled-back transition ---------------------------------------------
def test_change_events__failing_endpoint_and_broker__transition_done_failure_recorded(
        new_change, users, channel, httpserver, settings, monkeypatch, django_capture_on_commit_callbacks):
    httpserver.expect_request("/down", method="POST").respond_with_data("down", status=503)
    channel(environment="staging", path="/down")
    refuse = lambda *a, **k: (_ for _ in ()).throw(OSError("broker down"))  # noqa: E731
    monkeypatch.setattr(deliver_notification, "apply_async", refuse)
    monkeypatch.setattr(fan_out_notifications, "apply_async", refuse)
    change = new_change("staging", by=users["dev"])
    with django_capture_on_commit_callbacks(execute=True):
        services.change_submit(change=change, by=users["dev"])
        services.change_approve(change=change, by=users["approver"])
    assert ChangeRequest.objects.get(pk=change.pk).status == "approved"
    settings.DELIVERY_MAX_RETRIES = 0
    for notification in Notification.objects.filter(event__startswith="change."):
        deliver_notification.apply(args=(notification.pk,))
    assert set(Notification.objects.filter(event__startswith="change.").values_list("status", flat=True)) == {
        "failed"}
    assert ChangeRequest.objects.get(pk=change.pk).status == "approved"
    attempt = Notification.objects.get(event="change.approved").delivery_attempts.get()
    assert attempt.response_status == 503 and not attempt.delivered


def test_change_events__recording_fails__transition_still_commits(new_change, users, channel, monkeypatch):
    channel(environment="staging")

    def broken(*args, **kwargs):
        from django.db import DatabaseError

        raise DatabaseError("notification table unavailable")

    monkeypatch.setattr(delivery, "_record", broken)
    change = new_change("staging", by=users["dev"])
    services.change_submit(change=change, by=users["dev"])
    assert ChangeRequest.objects.get(pk=change.pk).status == "submitted"


def test_change_events__a_database_error_in_the_event__logged_transition_still_commits(new_change, users, channel,
                                                                                      monkeypatch, caplog):
    channel(environment="staging")

    real = delivery.subscribed_channels

    def broken(event, environment=""):
        from django.db import DatabaseError

        if event.startswith("change."):  # only this module's reads (the approval request reads them as well)
            raise DatabaseError("subscriptions unreadable")
        return real(event, environment)

    monkeypatch.setattr(delivery, "subscribed_channels", broken)
    change = new_change("staging", by=users["dev"])
    services.change_submit(change=change, by=users["dev"])  # no exception reaches the service
    assert ChangeRequest.objects.get(pk=change.pk).status == "submitted"
    assert transitions(change) == ["changerequest.submit"]  # its audit row stands
    assert "change.submitted event of change" in caplog.text


def test_change_events__transition_rolled_back__nothing_sent(new_change, users, channel,
                                                             django_capture_on_commit_callbacks):
    channel(environment="staging")
    change = new_change("staging", by=users["dev"])
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.change_submit(change=change, by=users["dev"])
            raise RuntimeError("the caller's transaction fails after the transition")
    assert callbacks == [] and not Notification.objects.exists()
    assert ChangeRequest.objects.get(pk=change.pk).status == "draft"


def test_openapi__change_events_documented(api, users):
    schema = api(users["admin"]).get("/api/schema/?format=json").json()
    enum = schema["components"]["schemas"]["WebhookEvent"]["properties"]["event"]["enum"]
    from changes.notifications import EVENTS

    assert {event for event, _, _ in EVENTS.values()} <= set(CHANGE_EVENTS) <= set(enum)
    assert schema["components"]["schemas"]["WebhookChangeData"]["required"] == WEBHOOK_CHANGE_DATA["required"]
