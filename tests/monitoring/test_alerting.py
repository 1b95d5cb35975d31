"""Alert rules: the PromQL check with positions, the state arithmetic, editing (admin and API), the shipped
defaults, beat's evaluation against a real Prometheus scraping a fixture exporter (firing, the `for` hold,
notifications within the cooldown, resolution), and the Prometheus rules-file export checked by promtool."""
import datetime as dt
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitoring.alerting import promql, services
from monitoring.metrics import services as metrics
from monitoring.models import AlertEvent, AlertRule
from pmrelease import delivery, errors, rules
from pmrelease.models import AuditEvent, Notification
from pmrelease.tasks import deliver_notification
from tests.prometheus_support import free_port, needs_prometheus, prometheus_scraping, wait_for_series

pytestmark = pytest.mark.django_db


# --- the condition's check -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("condition", "column", "says"), [
    ('rate(http_requests_total{status=~"5.."}[5m]) ) > 0.05', 46, "unexpected right parenthesis"),  # the seed's
    ("rate(x[5q]) > 1", 8, "bad number or duration"),
    ("sum(rate(x[5m])) bye (a) > 3", 18, "invalid"),
    ('up{job="a"', 11, "inside braces"),
])
def test_promql_problems__bad_condition__message_with_column_and_caret(condition, column, says):
    [message] = promql.problems(condition)
    assert says in message and f"at column {column}:" in message
    assert message.splitlines()[-1] == " " * (column - 1) + "^"


def test_promql_problems__seed_conditions_as_shipped__valid():
    assert all(promql.problems(spec["condition"]) == [] for spec in services.DEFAULT_RULES)
    assert promql.problems("  ") and promql.problems("x" * 5000) == ["at most 4000 characters"]


# --- the state arithmetic (pure) -------------------------------------------------------------------------------
def test_alert_step__no_hold__fires_at_once_then_resolves():
    step = rules.alert_step(state="inactive", since=None, matched=True, now=100)
    assert (step.state, step.notify, step.change) == ("firing", "firing", "firing")
    assert rules.alert_step(state="firing", since=100, matched=True, now=130).change == ""
    step = rules.alert_step(state="firing", since=100, matched=False, now=160, last_notified=100)
    assert (step.state, step.notify, step.change) == ("inactive", "resolved", "resolved")


def test_alert_step__hold__pending_until_for_elapsed_cleared_when_it_stops():
    step = rules.alert_step(state="inactive", since=None, matched=True, now=0, hold=60)
    assert (step.state, step.change, step.notify) == ("pending", "pending", "")
    assert rules.alert_step(state="pending", since=0, matched=True, now=59, hold=60).state == "pending"
    step = rules.alert_step(state="pending", since=0, matched=True, now=60, hold=60)
    assert (step.state, step.notify) == ("firing", "firing")
    step = rules.alert_step(state="pending", since=0, matched=False, now=30, hold=60)
    assert (step.state, step.change, step.notify) == ("inactive", "cleared", "")


def test_alert_step__within_cooldown__change_recorded_notification_suppressed():
    step = rules.alert_step(state="firing", since=0, matched=False, now=100, cooldown=300, last_notified=0)
    assert (step.state, step.change, step.notify, step.suppressed) == ("inactive", "resolved", "", "resolved")
    step = rules.alert_step(state="inactive", since=100, matched=True, now=300, cooldown=300, last_notified=0)
    assert (step.notify, step.suppressed) == ("firing", "")


# --- editing ---------------------------------------------------------------------------------------------------
def test_environment_created__production__gets_the_seed_rules(envs):
    production = sorted(AlertRule.objects.filter(environment=envs["production"]).values_list("name", "severity",
                                                                                            "cooldown"))
    assert production == [("High Error Rate", "critical", 5), ("Slow Response Time", "warning", 15)]
    assert not AlertRule.objects.exclude(environment=envs["production"]).exists()
    assert services.install_defaults(envs["production"]) == []  # idempotent


def test_rule_save__bad_condition__400_with_its_position(users, envs):
    with pytest.raises(errors.ValidationFailed) as exc:
        services.rule_save(environment=envs["staging"], by=users["admin"],
                           data={"name": "x", "condition": "rate(x[5m]) ) > 1", "severity": "info"})
    assert "at column 13" in exc.value.field_errors["condition"][0]


def test_rule_save__no_administrative_access__403(users, envs):
    with pytest.raises(errors.PermissionDenied):
        services.rule_save(environment=envs["production"], by=users["dev"],
                           data={"name": "x", "condition": "up == 0", "severity": "info"})


def test_api__create_update_and_bad_condition(users, envs, api):
    client = api(users["admin"])
    delivery.channel_save(data={"name": "slack", "url": "json://127.0.0.1:9/x"}, by=users["admin"])
    response = client.post("/api/v1/alert-rules/", {
        "environment": "staging", "name": "Queue backlog", "condition": "pmr_queue_depth > 100", "severity": "warning",
        "channels": ["slack"], "cooldown": 10, "for_seconds": 120}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "inactive" and body["channels"] == ["slack"] and body["environment"] == "staging"
    assert AuditEvent.objects.filter(action="alertrule.create", object_id=str(body["id"])).exists()
    response = client.patch(f"/api/v1/alert-rules/{body['id']}/", {"condition": "pmr_queue_depth >"}, format="json")
    assert response.status_code == 400 and "at column" in response.json()["condition"][0]
    response = client.patch(f"/api/v1/alert-rules/{body['id']}/", {"cooldown": -1}, format="json")
    assert response.status_code == 400
    response = client.post("/api/v1/alert-rules/", {"environment": "staging", "name": "Queue backlog",
                                                    "condition": "up == 0"}, format="json")
    assert response.status_code == 400  # the name is taken in this environment
    listed = client.get("/api/v1/alert-rules/?environment=production").json()
    assert {r["name"] for r in listed["results"]} == {"High Error Rate", "Slow Response Time"}
    assert api(users["dev"]).patch(f"/api/v1/alert-rules/{body['id']}/", {"cooldown": 1},
                                   format="json").status_code == 403


def test_evaluate__builtin_provider__error_shown_state_kept(users, envs):
    rule = AlertRule.objects.get(environment=envs["production"], name="High Error Rate")
    assert services.evaluate_rule(rule) == "error"
    rule.refresh_from_db()
    assert rule.state == "inactive" and "does not evaluate PromQL" in rule.last_error
    assert not AlertEvent.objects.exists()


# --- against a real Prometheus ---------------------------------------------------------------------------------
class GaugeExporter:
    """A fixture exporter: ``pmr_queue_depth{queue="mail"}`` at the value the test sets."""

    def __init__(self):
        self.value = 0.0
        self.port = free_port()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                body = (f'# TYPE pmr_queue_depth gauge\npmr_queue_depth{{queue="mail"}} {exporter.value}\n'
                        '# TYPE pmr_up gauge\npmr_up 1\n').encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def gauge_prometheus():
    exporter = GaugeExporter()
    with prometheus_scraping(exporter) as url:
        assert wait_for_series(url, "pmr_up"), "Prometheus did not scrape the fixture exporter"
        yield exporter, url
    exporter.close()


@pytest.fixture
def on_prometheus(gauge_prometheus, users, envs):
    exporter, url = gauge_prometheus
    exporter.value = 0.0
    metrics.config_save(environment=envs["production"], by=users["admin"], data={"kind": "prometheus", "url": url})
    return exporter, url


def set_and_wait(exporter, url, value, query):
    exporter.value = value
    assert wait_for_series(url, query), f"Prometheus did not see {query}"


@needs_prometheus
@pytest.mark.integration
def test_alert_rule__real_prometheus__fires_notifies_once_within_cooldown_and_resolves(
        on_prometheus, users, envs, httpserver):
    exporter, url = on_prometheus
    httpserver.expect_request("/alerts", method="POST").respond_with_data("ok")
    channel = delivery.channel_save(data={"name": "ops-hook", "url": f"json://127.0.0.1:{httpserver.port}/alerts"},
                                    by=users["admin"])
    rule = services.rule_save(environment=envs["production"], by=users["admin"], data={
        "name": "Mail queue backlog", "description": "more than 100 mails waiting", "severity": "critical",
        "condition": "pmr_queue_depth > 100", "cooldown": 5, "channels": [channel]})
    AlertRule.objects.filter(environment=envs["production"]).exclude(pk=rule.pk).update(enabled=False)
    t0 = timezone.now()

    assert services.evaluate_all(now=t0) == {}  # nothing returned: stays inactive
    set_and_wait(exporter, url, 500, "pmr_queue_depth > 100")
    assert services.evaluate_all(now=t0 + dt.timedelta(seconds=30)) == {rule.pk: "firing"}
    assert services.evaluate_all(now=t0 + dt.timedelta(seconds=60)) == {}  # still firing: nothing new
    rule.refresh_from_db()
    assert rule.state == "firing" and rule.last_result == [{"labels": {"__name__": "pmr_queue_depth",
                                                                       "instance": f"127.0.0.1:{exporter.port}",
                                                                       "job": "app", "queue": "mail"},
                                                            "value": 500.0}]
    [firing] = Notification.objects.filter(event="alert.firing")
    deliver_notification.apply(args=(firing.pk,))
    sent = httpserver.log[0][0].get_json()
    assert sent["title"].startswith("[PenguinMails") and "FIRING [critical] Mail queue backlog (production)" in \
        sent["title"]
    assert 'queue="mail"' in sent["message"] and "= 500" in sent["message"] and sent["type"] == "failure"

    set_and_wait(exporter, url, 0, "pmr_queue_depth == 0")
    assert services.evaluate_all(now=t0 + dt.timedelta(seconds=90)) == {rule.pk: "resolved"}
    set_and_wait(exporter, url, 700, "pmr_queue_depth > 100")
    assert services.evaluate_all(now=t0 + dt.timedelta(seconds=120)) == {rule.pk: "firing"}
    # within the 5-minute cooldown: both changes recorded, neither notified
    assert Notification.objects.filter(event__startswith="alert.").count() == 1
    set_and_wait(exporter, url, 0, "pmr_queue_depth == 0")
    assert services.evaluate_all(now=t0 + dt.timedelta(minutes=6)) == {rule.pk: "resolved"}  # past it: notified
    assert list(Notification.objects.filter(event__startswith="alert.").order_by("id")
                .values_list("event", flat=True)) == ["alert.firing", "alert.resolved"]
    history = list(AlertEvent.objects.filter(rule=rule).order_by("at").values_list("change", "notified"))
    assert history == [("firing", True), ("resolved", False), ("firing", False), ("resolved", True)]
    assert AuditEvent.objects.filter(action="alertrule.firing", object_id=str(rule.pk)).count() == 2


@needs_prometheus
@pytest.mark.integration
def test_alert_rule__for_hold__pending_then_firing(on_prometheus, users, envs):
    exporter, url = on_prometheus
    rule = services.rule_save(environment=envs["production"], by=users["admin"], data={
        "name": "Held", "condition": "pmr_queue_depth > 100", "for_seconds": 120, "severity": "warning"})
    set_and_wait(exporter, url, 300, "pmr_queue_depth > 100")
    t0 = timezone.now()
    assert services.evaluate_rule(rule, now=t0) == "pending"
    assert services.evaluate_rule(rule, now=t0 + dt.timedelta(seconds=119)) == ""
    assert services.evaluate_rule(rule, now=t0 + dt.timedelta(seconds=120)) == "firing"
    assert Notification.objects.filter(event="alert.firing").count() == 0  # nobody subscribed, no channels
    rule.refresh_from_db()
    assert rule.state == "firing"


@needs_prometheus
@pytest.mark.integration
def test_rule_test__admin_button_and_api__result_or_error_shown(on_prometheus, users, envs, client, api):
    exporter, url = on_prometheus
    set_and_wait(exporter, url, 250, "pmr_queue_depth > 100")
    rule = services.rule_save(environment=envs["production"], by=users["admin"], data={
        "name": "Backlog", "condition": "pmr_queue_depth > 100", "severity": "info"})
    client.force_login(users["admin"])
    page = client.get(f"/admin/monitoring/alertrule/{rule.pk}/test/").content.decode()
    assert "the alert would fire" in page and 'queue=&quot;mail&quot;' in page
    result = api(users["admin"]).post(f"/api/v1/alert-rules/{rule.pk}/test/",
                                      {"condition": "pmr_queue_depth > 1000"}, format="json").json()
    assert result == {"ok": True, "matched": False, "series": [], "error": ""}
    result = api(users["admin"]).post(f"/api/v1/alert-rules/{rule.pk}/test/",
                                      {"condition": 'label_replace(pmr_up, "a", "$1", "b", "(")'}, format="json")
    assert result.status_code == 200 and result.json()["ok"] is False and "Prometheus answered 422" in \
        result.json()["error"]
    bad = api(users["admin"]).post(f"/api/v1/alert-rules/{rule.pk}/test/", {"condition": "sum(("}, format="json")
    assert bad.status_code == 400 and "at column" in bad.json()["condition"][0]


def test_admin__bad_condition__error_at_its_column_on_the_form(users, envs, client):
    client.force_login(users["admin"])
    response = client.post("/admin/monitoring/alertrule/add/", {
        "environment": envs["staging"].pk, "name": "x", "description": "", "condition": "rate(x[5m]) ) > 1",
        "for_seconds": 0, "severity": "info", "cooldown": 5, "enabled": "on",
        "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "1000"})
    page = response.content.decode()
    assert response.status_code == 200 and "unexpected right parenthesis" in page and "at column 13" in page
    assert not AlertRule.objects.filter(name="x").exists()


def test_admin__add_rule__through_the_service_and_listed(users, envs, client):
    client.force_login(users["admin"])
    response = client.post("/admin/monitoring/alertrule/add/", {
        "environment": envs["staging"].pk, "name": "Backlog", "description": "", "condition": "pmr_queue_depth > 1",
        "for_seconds": 0, "severity": "info", "cooldown": 5, "enabled": "on",
        "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "1000"})
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = AlertRule.objects.get(name="Backlog")
    assert AuditEvent.objects.filter(action="alertrule.create", object_id=str(rule.pk)).exists()
    for page in ("/admin/monitoring/alertrule/", f"/admin/monitoring/alertrule/{rule.pk}/change/",
                 "/admin/monitoring/activealert/", "/admin/monitoring/alertevent/"):
        assert client.get(page).status_code == 200, page


# --- export ----------------------------------------------------------------------------------------------------
def test_export_alert_rules__promtool_accepts_it(users, envs, tmp_path, capsys):
    services.rule_save(environment=envs["staging"], by=users["admin"], data={
        "name": "Mail queue backlog!", "condition": "pmr_queue_depth > 100", "for_seconds": 300,
        "severity": "warning"})
    call_command("export_alert_rules")
    text = capsys.readouterr().out
    assert "alert: HighErrorRate" in text and "alert: MailQueueBacklog" in text and "for: 5m" in text
    path = tmp_path / "rules.yml"
    call_command("export_alert_rules", "--environment", "production", "--output", str(path))
    import yaml

    document = yaml.safe_load(path.read_text())
    [group] = document["groups"]
    assert group["name"] == "pmrelease-production" and [r["alert"] for r in group["rules"]] == [
        "HighErrorRate", "SlowResponseTime"]
    assert group["rules"][0] == {"alert": "HighErrorRate", "expr": 'rate(http_requests_total{status=~"5.."}[5m]) '
                                 "> 0.05", "labels": {"severity": "critical", "environment": "production"},
                                 "annotations": {"summary": "High Error Rate", "description": "API error rate above 5%"}}
    promtool = shutil.which("promtool")
    if promtool is None:
        import os

        assert not os.environ.get("CI"), "promtool (Debian's prometheus package) is required in CI"
        pytest.skip("no promtool here")
    full = tmp_path / "all.yml"
    full.write_text(text)
    for checked in (path, full):
        result = subprocess.run([promtool, "check", "rules", str(checked)], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout + result.stderr


def test_export_alert_rules__unknown_environment__error_names_the_known_ones(envs):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="known: .*production"):
        call_command("export_alert_rules", "--environment", "nowhere")


def test_beat__evaluation_task_scheduled_and_runs_every_enabled_rule(envs, settings):
    from monitoring.tasks import evaluate_alert_rules

    entry = settings.CELERY_BEAT_SCHEDULE["alert-rules-evaluate"]
    assert entry["task"] == "monitoring.tasks.evaluate_alert_rules" and entry["schedule"] == 30.0
    assert evaluate_alert_rules() == {}  # the builtin provider: an error on each rule, no state change
    errors_shown = AlertRule.objects.filter(enabled=True).values_list("last_error", flat=True)
    assert len(errors_shown) == 2 and all("does not evaluate PromQL" in e for e in errors_shown)
