"""The rollback-trigger watch against a real Prometheus scraping real counters (the shipped error_rate
template, its rate window shortened to 3 s, the seed's 300 s duration shortened to 6 s)."""
import datetime as dt
import time

import pytest

from monitoring.metrics import services as metrics
from pmrelease.models import AuditEvent
from releases import services
from releases.deploy import engine, watch
from releases.deploy import services as deployments
from releases.models import Deployment, DeploymentTarget, TriggerEvaluation
from tests.factories import make_release
from tests.prometheus_support import Exporter, needs_prometheus, prometheus_scraping, wait_for_series

pytestmark = [needs_prometheus, pytest.mark.integration]
DURATION = 6


@pytest.fixture(scope="module")
def prom():
    exporter = Exporter()
    with prometheus_scraping(exporter) as url:
        yield exporter, url
    exporter.close()


@pytest.fixture
def on_prometheus(prom, users, envs, settings):
    settings.METRICS_RATE_WINDOW = "3s"
    settings.MONITORING_TICK_SECONDS = 1
    exporter, url = prom
    DeploymentTarget.objects.create(environment=envs["development"], backend="script",
                                    config={"commands": {"deploy": "true", "restore": "true"}})
    envs["development"].bake_minutes = 10
    envs["development"].save(update_fields=["bake_minutes"])
    metrics.config_save(environment=envs["development"], by=users["ops"], data={"kind": "prometheus", "url": url})
    return exporter, url


def succeeded(users, envs, version, triggers):
    release = make_release(by=users["dev"], envs=[envs["development"]], version=version)
    services.release_approve(release=release, by=users["approver"])
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        dispatch=False, parameters={"rollback_triggers": triggers})
    dep = engine.run_inline(dep.pk)
    assert dep.status == "succeeded", dep.failure_reason
    return dep


def tick_until(predicate, seconds, interval=0.5):
    deadline = time.monotonic() + seconds
    reports = []
    while time.monotonic() < deadline:
        reports.append(watch.tick(dispatch=False))
        if predicate(reports[-1]):
            return reports
        time.sleep(interval)
    return reports


@pytest.mark.django_db
def test_prometheus__spike_ignored_sustained_breach_rolls_back_within_a_tick_after_duration(on_prometheus, users,
                                                                                           envs):
    exporter, url = on_prometheus
    rollback = {"metric": "error_rate", "operator": ">", "threshold": 0.1, "duration": DURATION, "cooldown": 60}
    dep = succeeded(users, envs, "7.0.0", [rollback])
    exporter.set_ratio("7.0.0", 0.01)
    assert wait_for_series(url, 'http_requests_total{version="7.0.0"}')
    time.sleep(4)  # a few scrapes of healthy traffic
    exporter.set_ratio("7.0.0", 0.6)  # a 2 s spike
    time.sleep(2)
    exporter.set_ratio("7.0.0", 0.01)
    reports = tick_until(lambda r: r["actions"], DURATION + 6)
    assert not any(r["actions"] for r in reports), "a 2 s spike must not roll back"
    assert "breaching" in [d for r in reports for d in r["decisions"]]  # it was seen, and not sustained
    started = time.monotonic()
    exporter.set_ratio("7.0.0", 0.6)  # a sustained breach
    reports = tick_until(lambda r: r["actions"], DURATION + 15)
    fired_after = time.monotonic() - started
    assert reports[-1]["actions"] == [("rollback", dep.pk)], reports[-3:]
    # the rate window (3 s) and a scrape or two delay the breach; then six seconds must pass, then one tick
    assert DURATION <= fired_after <= DURATION + 3 + 2 + 1 + 2, fired_after
    dep.refresh_from_db()
    assert dep.status == "rolling_back" and "post-success rollback trigger fired" in dep.failure_reason
    assert engine.run_inline(dep.pk).status == "rolled_back"
    fired = TriggerEvaluation.objects.get(deployment=dep, decision="fired")
    assert fired.value > 0.1 and "breached since" in fired.detail


@pytest.mark.django_db
def test_prometheus__alert_cooldown_bake_no_data_and_unreachable(on_prometheus, users, envs):
    exporter, url = on_prometheus
    alert = {"metric": "error_rate", "operator": ">", "threshold": 0.1, "duration": 2, "action": "alert",
             "cooldown": 1}
    old = succeeded(users, envs, "7.9.0", [alert])  # finished long ago: outside its bake time
    Deployment.objects.filter(pk=old.pk).update(finished_at=old.finished_at - dt.timedelta(minutes=11))
    dep = succeeded(users, envs, "8.0.0", [alert, {**alert, "metric": "response_time_p95", "no_data": "hold"}])
    exporter.set_ratio("8.0.0", 0.5)
    exporter.set_ratio("7.9.0", 0.5)
    assert wait_for_series(url, 'http_requests_total{version="8.0.0"}')
    reports = tick_until(lambda r: r["actions"], 20)
    assert reports[-1]["actions"] == [("alert", dep.pk)]
    time.sleep(1)
    later = watch.tick(dispatch=False)
    assert later["decisions"] == {"cooling_down": 1, "no_data": 1} and later["actions"] == []
    assert TriggerEvaluation.objects.filter(deployment=old).count() == 0  # outside the bake time: not watched
    assert Deployment.objects.get(pk=dep.pk).status == "succeeded"
    assert AuditEvent.objects.filter(action="deployment.trigger_fired", object_id=str(dep.pk)).count() == 1
    p95 = TriggerEvaluation.objects.filter(deployment=dep, trigger__metric="response_time_p95").latest("at")
    assert p95.decision == "no_data" and "no-data policy: hold" in p95.detail  # no histogram exported
    metrics.config_save(environment=envs["development"], by=users["ops"],
                        data={"url": "http://127.0.0.1:9", "timeout": 0.5})  # Prometheus unreachable
    report = watch.tick(dispatch=False)
    assert report["decisions"] == {"error": 2} and report["actions"] == []
    assert "did not answer" in TriggerEvaluation.objects.filter(deployment=dep).latest("at").detail


@pytest.mark.django_db
def test_prometheus__many_deployments__one_query_per_metric(on_prometheus, users, envs, monkeypatch):
    from monitoring.metrics.prometheus import PrometheusProvider

    exporter, url = on_prometheus
    calls = []
    original = PrometheusProvider.query_range
    monkeypatch.setattr(PrometheusProvider, "query_range",
                        lambda self, query, **kw: calls.append(query) or original(self, query, **kw))
    trigger = {"metric": "error_rate", "operator": ">", "threshold": 0.9, "duration": 6}
    for i in range(5):
        succeeded(users, envs, f"9.{i}.0", [trigger, {**trigger, "threshold": 0.95}])
    report = watch.tick(dispatch=False)
    assert report["deployments"] == 5 and report["triggers"] == 10
    assert len(calls) == 1 and "9[.]4[.]0" in calls[0]
