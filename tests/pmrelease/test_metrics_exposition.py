"""/metrics parsed by prometheus_client's own parser after a deployment: every family the portal promises,
with the right values; and the sums across processes (multiprocess mode)."""
import os
import subprocess
import sys

import pytest
from celery import shared_task
from prometheus_client.parser import text_string_to_metric_families

from flags import usage
from monitoring.metrics import services as metric_services
from pmrelease import tasks
from releases import services
from releases.deploy import engine, watch
from releases.deploy import services as deployments
from releases.models import DeploymentTarget
from tests.factories import make_release

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _scrape_allowed(settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # with DATABASE_URL set nothing is allowed by default


def scrape(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    families = set()
    for family in text_string_to_metric_families(response.content.decode()):
        families.add(family.name)
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return families, samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


@shared_task(name="tests.metrics.boom")
def boom():
    raise RuntimeError("the task failed on purpose")


def test_metrics__after_deployments_requests_tasks_and_flags__every_family_counted(
        client, users, envs, settings, django_capture_on_commit_callbacks):
    settings.METRICS_BUILTIN_BUCKET_SECONDS = 1
    _, before = scrape(client)
    DeploymentTarget.objects.create(environment=envs["development"], backend="script",
                                    config={"commands": {"deploy": "true", "restore": "true"}})
    DeploymentTarget.objects.create(environment=envs["staging"], backend="simulation")
    envs["development"].bake_minutes = 10
    envs["development"].save(update_fields=["bake_minutes"])
    with django_capture_on_commit_callbacks(execute=True):
        release = make_release(by=users["dev"], envs=[envs["development"], envs["staging"]])
        services.release_approve(release=release, by=users["approver"])
        good = deployments.deployment_create(
            release=release, environment=envs["development"], by=users["ops"], dispatch=False,
            parameters={"rollback_triggers": [{"metric": "error_rate", "operator": ">", "threshold": 0.1}]})
        assert engine.run_inline(good.pk).status == "succeeded"
        bad = deployments.deployment_create(
            release=release, environment=envs["staging"], by=users["ops"], dispatch=False, strategy="canary",
            parameters={"pause": 0, "simulate": {"fail_health_check_at_weight": 10}})
        bad = engine.run_inline(bad.pk)
        assert bad.status == "rolled_back" and bad.rolled_back_automatically
        # the watch asks an unreachable provider about the development deployment: one "error" evaluation
        metric_services.config_save(environment=envs["development"], by=users["ops"],
                                    data={"kind": "prometheus", "url": "http://127.0.0.1:9", "timeout": 0.5})
        assert watch.tick(dispatch=False)["decisions"] == {"error": 1}
    client.force_login(users["admin"])
    assert client.get("/api/v1/releases/").status_code == 200
    assert client.get("/api/v1/no-such-thing/").status_code == 404
    client.logout()
    tasks.audit_checkpoint.apply()
    assert boom.apply().failed()
    usage.record(envs["development"].pk, "new-checkout", True)
    usage.record(envs["development"].pk, "new-checkout", False)
    usage.record(envs["development"].pk, "new-checkout", True)
    usage.flush()

    families, after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("pmrelease_deployments_total", environment="development", outcome="succeeded") == 1
    assert delta("pmrelease_deployments_total", environment="staging", outcome="rolled_back") == 1
    assert delta("pmrelease_rollbacks_total", environment="staging", kind="automatic") == 1
    assert delta("pmrelease_rollbacks_total", environment="staging", kind="manual") == 0
    steps = {k: v for k, v in after.items() if k[0] == "pmrelease_deployment_step_duration_seconds_count"}
    phases = {(dict(k[1])["phase"], dict(k[1])["status"]) for k in steps}
    assert ("deploy", "succeeded") in phases and ("deploy", "failed") in phases and ("rollback", "succeeded") in phases
    assert delta("pmrelease_trigger_evaluations_total", decision="error", source="watch") == 1
    assert delta("http_requests_total", view="release-list", method="GET", status="200") == 1
    assert delta("http_requests_total", view="unmatched", method="GET", status="404") == 1
    assert delta("http_request_duration_seconds_count", view="release-list", method="GET") == 1
    assert value(after, "http_request_duration_seconds_bucket", view="release-list", method="GET", le="+Inf") >= 1
    assert delta("pmrelease_celery_task_duration_seconds_count", task="pmrelease.tasks.audit_checkpoint",
                 state="SUCCESS") == 1
    assert delta("pmrelease_celery_task_failures_total", task="tests.metrics.boom", exception="RuntimeError") == 1
    assert value(after, "pmrelease_flag_evaluations_total", environment="development", result="enabled") == 2
    assert value(after, "pmrelease_flag_evaluations_total", environment="development", result="disabled") == 1
    assert ("pmrelease_celery_queue_length", (("queue", "celery"),)) in after
    assert value(after, "pmrelease_deployments_pending", environment="production") == 0
    assert {"pmrelease_releases", "pmrelease_audit_events"} <= families


def test_metrics__a_deployment_rolled_back_by_an_operator__counted_as_manual(
        client, users, envs, django_capture_on_commit_callbacks):
    DeploymentTarget.objects.create(environment=envs["development"], backend="simulation")
    _, before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        release = make_release(by=users["dev"], envs=[envs["development"]])
        services.release_approve(release=release, by=users["approver"])
        dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                            dispatch=False)
        assert engine.run_inline(dep.pk).status == "succeeded"
        deployments.deployment_action(deployment=dep, name="rollback", by=users["ops"], dispatch=False,
                                      reason="operator's call")
        assert engine.run_inline(dep.pk).status == "rolled_back"
    _, after = scrape(client)
    key = ("pmrelease_rollbacks_total", (("environment", "development"), ("kind", "manual")))
    assert after.get(key, 0) - before.get(key, 0) == 1


def test_metrics__other_processes__summed_in_one_scrape(client, settings):
    """A Celery worker (another process sharing PROMETHEUS_MULTIPROC_DIR) counts a deployment: the web's
    /metrics shows it."""
    _, before = scrape(client)
    code = ("import django; django.setup(); from pmrelease import metrics; "
            "metrics.deployments.labels('dr', 'failed').inc(2)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ,
                                                                 "DJANGO_SETTINGS_MODULE": "pmrelease.settings"},
                   cwd=settings.BASE_DIR, timeout=60)
    _, after = scrape(client)
    key = ("pmrelease_deployments_total", (("environment", "dr"), ("outcome", "failed")))
    assert after.get(key, 0) - before.get(key, 0) == 2


def test_metrics__alert_rules__one_sample_per_rule_with_its_state(client, users, envs):
    """The alert engine provides ``pmrelease_alerts`` (the seed's two production rules are installed)."""
    from monitoring.alerting.models import AlertRule

    AlertRule.objects.filter(environment=envs["production"], name="High Error Rate").update(state="firing")
    _, samples = scrape(client)
    assert value(samples, "pmrelease_alerts", alertname="High Error Rate", environment="production",
                 severity="critical", state="firing") == 1
    assert value(samples, "pmrelease_alerts", alertname="Slow Response Time", environment="production",
                 severity="warning", state="inactive") == 1
