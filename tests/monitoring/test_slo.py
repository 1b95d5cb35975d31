"""SLOs: error budget and the SRE workbook's multiwindow burn-rate alerts (monitoring.slo), from the component's
status history and the environment's deployments; the service, the API and the admin."""
import datetime as dt

import pytest

from monitoring import slo
from monitoring.alerting import services as alerting
from monitoring.reliability import selectors, services
from monitoring.statuspage.components import component_create
from monitoring.statuspage.models import ComponentStatusChange
from pmrelease import delivery, errors
from pmrelease.models import AuditEvent, Notification
from releases.models import Deployment
from tests.factories import ReleaseFactory

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
M, H, D = dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=1)


def spans(counts):
    """A ratio source answering by span length: {span: (bad, total)}; a span not listed has no events."""
    return lambda start, end: counts.get(end - start)


def test_thresholds__30_day_window__the_workbooks_rates():
    window = 30 * D
    assert [round(slo.threshold(a, window), 6) for a in slo.ALERTS] == [14.4, 6, 3, 1]
    assert round(slo.threshold(slo.ALERTS[0], 7 * D), 6) == 3.36  # 2 % of a week's budget in an hour


def test_evaluate__hand_worked__budget_and_burn_rates():
    # 99.9 % over 30 days: the budget is 0.1 %. 5 bad of 10,000 → 0.05 % spent: half the budget left.
    # last 1 h: 4 of 200 bad (2 %, burn 20); 5 min: 3 of 100 (3 %, burn 30) → the 14.4 page fires
    # last 6 h: 5 of 1,000 (0.5 %, burn 5); 30 min: 4 of 150 → 5 < 6: the 6 h page does not
    # last 24 h: 5 of 1,250 (0.4 %, burn 4 ≥ 3); 2 h: 4 of 300 (burn 13.3) → the 1-day ticket fires
    # last 3 d: 5 of 2,000 (0.25 %, burn 2.5 ≥ 1); 6 h → the 3-day ticket fires
    status = slo.evaluate(objective_percent=99.9, window=30 * D, now=NOW, ratio=spans({
        30 * D: (5, 10_000), 5 * M: (3, 100), H: (4, 200), 30 * M: (4, 150), 6 * H: (5, 1000),
        2 * H: (4, 300), 24 * H: (5, 1250), 72 * H: (5, 2000)}))
    assert status.error_budget == pytest.approx(0.001)
    assert status.sli == pytest.approx(0.9995) and (status.good, status.total) == (9995, 10_000)
    assert status.budget_remaining == pytest.approx(0.5)
    assert status.burn_rates[3600] == pytest.approx(20) and status.burn_rates[300] == pytest.approx(30)
    assert [(a.alert.severity, a.alert.long / H, a.firing) for a in status.alerts] == [
        ("page", 1, True), ("page", 6, False), ("ticket", 24, True), ("ticket", 72, True)]
    assert status.alerts[1].long_burn_rate == pytest.approx(5)


def test_evaluate__long_window_burning_short_window_recovered__does_not_fire():
    """The short window resets the alert soon after the burning stopped (the workbook's reason for it)."""
    status = slo.evaluate(objective_percent=99.0, window=30 * D, now=NOW, ratio=spans({
        H: (30, 100), 5 * M: (0, 10)}))  # 30 % in the hour (burn 30), nothing bad in the last 5 minutes
    assert status.alerts[0].long_burn_rate == pytest.approx(30) and status.alerts[0].short_burn_rate == 0
    assert not status.alerts[0].firing and status.firing == []


def test_evaluate__exactly_at_the_threshold__fires_and_over_budget_goes_negative():
    status = slo.evaluate(objective_percent=99.0, window=30 * D, now=NOW, ratio=spans({
        30 * D: (3, 100), H: (144, 1000), 5 * M: (144, 1000)}))  # 14.4 % = burn 14.4
    assert status.alerts[0].firing
    assert status.budget_remaining == pytest.approx(-2)  # 3 % bad of a 1 % budget: spent three times


def test_evaluate__no_events__no_sli_no_budget_figure_nothing_fires():
    status = slo.evaluate(objective_percent=99.9, window=30 * D, now=NOW, ratio=spans({}))
    assert status.sli is None and status.budget_remaining is None and status.firing == []
    assert status.as_dict()["alerts"][0]["long_burn_rate"] is None


@pytest.mark.parametrize(("objective", "window", "field"), [(100, 30, "objective"), (0, 30, "objective"),
                                                            ("99", 30, "objective"), (99.9, 0, "window_days"),
                                                            (99.9, 91, "window_days")])
def test_problems__out_of_range__named(objective, window, field):
    assert [p.split(":")[0] for p in slo.problems(objective=objective, window_days=window)] == [field]


# --- from the portal's own history ----------------------------------------------------------------------------
@pytest.fixture
def api_component(db, users, envs):
    component = component_create(data={"name": "Sending API"}, by=users["ops"])
    component.environments.set([envs["production"]])
    ComponentStatusChange.objects.filter(component=component).update(at=NOW - 40 * D)
    return component


def status_change(component, at, status):
    ComponentStatusChange.objects.create(component=component, new_status=status, at=at)


@pytest.mark.django_db
def test_uptime_slo__status_history__budget_and_burn(users, envs, api_component):
    """99 % over 30 days = 7.2 h of budget. A major outage of 1 h ending 30 min ago and 2 h of partial outage
    (30 %: 0.6 h) a week ago: 1.6 h down of 720 → 77.8 % of the budget left. 1 h page: the last hour was down
    30 min (burn 50) but the last 5 min were up (burn 0): silent. 6 h page: 1 h down in 6 h (burn 16.7), the
    last 30 min up: silent. 1-day ticket: 1 h in 24 h (burn 4.2 ≥ 3) and 1 h in the last 2 h (burn 50): fires.
    3-day ticket: 1 h in 72 h (burn 1.4 ≥ 1) and 1 h in 6 h (burn 16.7): fires."""
    made = services.slo_save(by=users["admin"], data={
        "name": "Sending API uptime", "environment": envs["production"], "component": api_component,
        "sli": "uptime", "objective": 99.0, "window_days": 30})
    status_change(api_component, NOW - 7 * D, "partial_outage")
    status_change(api_component, NOW - 7 * D + 2 * H, "operational")
    status_change(api_component, NOW - 90 * M, "major_outage")
    status_change(api_component, NOW - 30 * M, "operational")
    status = selectors.slo_status(made, NOW)
    assert status.budget_remaining == pytest.approx(1 - 1.6 / 7.2)
    assert status.sli == pytest.approx(1 - 1.6 / 720)
    assert status.burn_rates[3600] == pytest.approx(50)
    assert status.burn_rates[300] == 0
    assert status.burn_rates[6 * 3600] == pytest.approx((1 / 6) / 0.01)
    assert [a.firing for a in status.alerts] == [False, False, True, True]
    fired = selectors.slo_burn_rate_alerts(NOW)
    assert [(f["name"], f["severity"], f["long_window_seconds"]) for f in fired] == [
        ("Sending API uptime", "ticket", 86400.0), ("Sending API uptime", "ticket", 259200.0)]
    # the alert engine's round notifies each firing window pair once per long window, to the subscribed channels
    channel = delivery.channel_save(data={"name": "ops-pager", "url": "json://127.0.0.1:9/hook"}, by=users["admin"])
    delivery.subscription_save(channel=channel, event="slo.burn_rate", environment="production", by=users["admin"])
    assert alerting.notify_slo_burn_rates(now=NOW) == 2
    assert alerting.notify_slo_burn_rates(now=NOW + 10 * M) == 0  # the same windows: already told
    sent = Notification.objects.filter(event="slo.burn_rate").order_by("id")
    assert [n.channel_id for n in sent] == [channel.pk, channel.pk]
    assert "SLO Sending API uptime (Sending API in production): error budget burning 4.2x" in sent[0].title


@pytest.mark.django_db
def test_deployment_success_slo__deployments__bad_are_failed_and_rolled_back(users, envs):
    made = services.slo_save(by=users["admin"], data={
        "name": "Production deployments", "environment": envs["production"], "sli": "deployment_success",
        "objective": 90.0, "window_days": 30})
    for days_ago, status in ((20, "succeeded"), (10, "succeeded"), (5, "rolled_back"), (2, "succeeded"),
                             (1, "failed"), (0.01, "cancelled")):
        at = NOW - dt.timedelta(days=days_ago)
        Deployment.objects.create(release=ReleaseFactory(), environment=envs["production"], strategy="canary",
                                  backend="simulation", status=status, started_at=at - H, finished_at=at)
    status = selectors.slo_status(made, NOW)
    assert (status.good, status.total) == (3, 5)  # the cancelled one counts nowhere
    assert status.budget_remaining == pytest.approx(1 - 0.4 / 0.1)
    assert status.burn_rates[3 * 86400] == pytest.approx(0.5 / 0.1)  # 2 and 1 days ago: 1 bad of 2
    assert status.burn_rates[3600] is None  # no deployment in the last hour


@pytest.mark.django_db
def test_slo_save__invalid__400_fields_named_nothing_saved(users, envs, api_component):
    with pytest.raises(errors.ValidationFailed) as caught:
        services.slo_save(by=users["admin"], data={"name": "x", "environment": envs["staging"], "sli": "uptime",
                                                   "component": api_component, "objective": 100,
                                                   "window_days": 120})
    assert set(caught.value.field_errors) == {"objective", "window_days", "component"}
    with pytest.raises(errors.ValidationFailed) as caught:
        services.slo_save(by=users["admin"], data={"name": "y", "environment": envs["production"],
                                                   "sli": "uptime", "objective": 99.0})
    assert "component" in caught.value.field_errors
    assert not AuditEvent.objects.filter(action="slo.create").exists()


@pytest.mark.django_db
def test_slo_save__without_configure_access__refused(users, envs):
    with pytest.raises(errors.PermissionDenied):
        services.slo_save(by=users["dev"], data={"name": "z", "environment": envs["production"],
                                                 "sli": "deployment_success", "objective": 99.0})


@pytest.mark.django_db
def test_slo_api__list__status_with_budget_and_alerts(users, envs, api, api_component):
    made = services.slo_save(by=users["admin"], data={
        "name": "Sending API uptime", "environment": envs["production"], "component": api_component,
        "sli": "uptime", "objective": 99.9, "window_days": 30})
    assert AuditEvent.objects.filter(action="slo.create", object_id=str(made.pk)).exists()
    response = api(users["admin"]).get("/api/v1/slos/?environment=production")
    assert response.status_code == 200
    (item,) = response.json()["results"]
    assert item["name"] == "Sending API uptime" and item["component"] == "Sending API"
    assert item["status"]["objective"] == 0.999 and item["status"]["budget_remaining"] == 1.0
    assert [a["threshold"] for a in item["status"]["alerts"]] == [14.4, 6, 3, 1]
    assert api(users["admin"]).get(f"/api/v1/slos/{made.pk}/").json()["status"]["sli"] == 1.0
    assert api().get("/api/v1/slos/").status_code in (401, 403)


@pytest.mark.django_db
def test_slo_admin__list_and_page__show_budget_and_alerts(users, envs, client, api_component, step_up):
    made = services.slo_save(by=users["admin"], data={
        "name": "Sending API uptime", "environment": envs["production"], "component": api_component,
        "sli": "uptime", "objective": 99.5, "window_days": 30})
    client.force_login(users["admin"])
    listing = client.get("/admin/monitoring/servicelevelobjective/").content.decode()
    assert "Sending API uptime" in listing and "100 %" in listing
    page = client.get(f"/admin/monitoring/servicelevelobjective/{made.pk}/change/").content.decode()
    assert "error budget 0.5 %" in page and "long burn rate" in page
    step_up(client)  # configuring production needs a recent second factor
    response = client.post(f"/admin/monitoring/servicelevelobjective/{made.pk}/change/", {
        "name": "Sending API uptime", "description": "", "environment": envs["production"].pk,
        "component": api_component.pk, "sli": "uptime", "objective": "99.9", "window_days": "28", "enabled": "on"})
    assert response.status_code == 302
    made.refresh_from_db()
    assert (made.objective, made.window_days) == (99.9, 28)
    assert AuditEvent.objects.filter(action="slo.update", object_id=str(made.pk)).exists()
