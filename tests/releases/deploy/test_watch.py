"""The scheduled rollback-trigger watch on the builtin provider: sustain, cooldown, bake time, no data, errors,
and two ticks at once firing once. (The same watch against a real Prometheus: tests/monitoring/test_prometheus.)"""
import datetime as dt
import threading
import time

import pytest
from django.core import mail
from django.db import connections

from monitoring.metrics import services as metrics
from pmrelease.models import AuditEvent
from releases import services
from releases.deploy import engine, watch
from releases.deploy import services as deployments
from releases.models import Deployment, DeploymentTarget, Release, TriggerEvaluation
from tests.factories import make_release

TRIGGER = {"metric": "error_rate", "operator": ">", "threshold": 0.1, "duration": 6, "cooldown": 1}


@pytest.fixture
def fine_buckets(settings):
    settings.METRICS_BUILTIN_BUCKET_SECONDS = 1
    settings.MONITORING_TICK_SECONDS = 1


@pytest.fixture
def script_target(envs):
    """A target whose operations succeed at once and measure nothing: the test pushes the samples."""
    return DeploymentTarget.objects.create(environment=envs["development"], backend="script",
                                           config={"commands": {"deploy": "true", "restore": "true"}})


def deployed(users, envs, *, trigger=None, run=True, version=None, bake_minutes=None):
    if bake_minutes is not None:
        envs["development"].bake_minutes = bake_minutes
        envs["development"].save(update_fields=["bake_minutes"])
    release = make_release(by=users["dev"], envs=[envs["development"]], version=version)
    services.release_approve(release=release, by=users["approver"])
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        dispatch=False, parameters={"rollback_triggers": [trigger or TRIGGER]})
    return engine.run_inline(dep.pk) if run else dep


def push(envs, version, values, *, end):
    """One sample a second, the last at ``end`` (unix seconds)."""
    metrics.ingest(environment_id=envs["development"].pk, samples=[
        {"metric": "error_rate", "value": v, "version": version,
         "at": dt.datetime.fromtimestamp(end - (len(values) - 1 - i), tz=dt.UTC).isoformat()}
        for i, v in enumerate(values)])


def decisions(dep):
    return list(TriggerEvaluation.objects.filter(deployment=dep, source="watch").order_by("at", "id")
                .values_list("decision", flat=True))


@pytest.mark.django_db
def test_watch__spike_then_sustained_breach__fires_only_when_sustained_and_rolls_back(users, envs, script_target,
                                                                                     fine_buckets):
    dep = deployed(users, envs, bake_minutes=10)
    version, now = dep.release.version, time.time()
    push(envs, version, [0.01] * 5 + [0.5, 0.5] + [0.01] * 3, end=now - 10)  # a 2 s spike
    push(envs, version, [0.01] * 4 + [0.5] * 4, end=now - 1)  # breaching for 4 s: not yet
    report = watch.tick(now=now - 1, dispatch=False)
    assert report["decisions"] == {"breaching": 1} and report["actions"] == []
    push(envs, version, [0.5] * 4, end=now + 3 - 1e-3)
    report = watch.tick(now=now + 3, dispatch=False)
    assert report["decisions"] == {"fired": 1} and report["actions"] == [("rollback", dep.pk)]
    dep.refresh_from_db()
    assert dep.status == "rolling_back" and dep.rolled_back_automatically
    assert "post-success rollback trigger fired: error_rate > 0.1 for 6 s" in dep.failure_reason
    assert engine.run_inline(dep.pk).status == "rolled_back"
    assert AuditEvent.objects.filter(action="deployment.trigger_fired", object_id=str(dep.pk)).count() == 1
    assert watch.tick(now=now + 4, dispatch=False)["deployments"] == 0  # rolled back: no longer watched


@pytest.mark.django_db
def test_watch__alert_trigger__notifies_once_within_its_cooldown(users, envs, script_target, fine_buckets):
    dep = deployed(users, envs, bake_minutes=10, trigger={**TRIGGER, "action": "alert", "cooldown": 5})
    version, now = dep.release.version, time.time()
    push(envs, version, [0.5] * 8, end=now)
    assert watch.tick(now=now, dispatch=False)["actions"] == [("alert", dep.pk)]
    push(envs, version, [0.5] * 2, end=now + 2)
    assert watch.tick(now=now + 2, dispatch=False)["decisions"] == {"cooling_down": 1}
    assert decisions(dep) == ["fired", "cooling_down"]
    assert Deployment.objects.get(pk=dep.pk).status == "succeeded"  # an alert does not roll back


@pytest.mark.django_db
def test_watch__bake_time__watched_inside_not_after(users, envs, script_target, fine_buckets):
    dep = deployed(users, envs, bake_minutes=1)
    version = dep.release.version
    inside = dep.finished_at.timestamp() + 30
    push(envs, version, [0.5] * 8, end=inside)
    assert watch.tick(now=inside, dispatch=False)["actions"] == [("rollback", dep.pk)]
    assert engine.run_inline(dep.pk).status == "rolled_back"
    other = deployed(users, envs, bake_minutes=1)
    after = other.finished_at.timestamp() + 61
    assert other.pk not in [d.pk for d in watch.watched(dt.datetime.fromtimestamp(after, tz=dt.UTC))]


@pytest.mark.django_db
def test_watch__outside_production_no_bake_by_default__succeeded_deployment_not_watched(users, envs, script_target):
    dep = deployed(users, envs)
    assert envs["development"].bake_seconds == 0 and envs["production"].bake_seconds == 1800
    assert watch.tick(dispatch=False)["deployments"] == 0 and not decisions(dep)


@pytest.mark.django_db
@pytest.mark.parametrize(("policy", "decision", "actions"), [("hold", "no_data", []),
                                                              ("alert", "no_data", ["alert"]),
                                                              ("breach", "fired", ["rollback"])])
def test_watch__no_data__the_policy_decides(users, envs, script_target, fine_buckets, policy, decision, actions):
    dep = deployed(users, envs, bake_minutes=10, trigger={**TRIGGER, "no_data": policy})
    report = watch.tick(dispatch=False)
    assert decisions(dep) == [decision] and [a for a, _ in report["actions"]] == actions
    assert ("no samples" in TriggerEvaluation.objects.get(deployment=dep).detail)


@pytest.mark.django_db
def test_watch__provider_unreachable__error_recorded_no_action(users, envs, script_target, fine_buckets):
    dep = deployed(users, envs, bake_minutes=10)
    metrics.config_save(environment=envs["development"], by=users["ops"],
                        data={"kind": "prometheus", "url": "http://127.0.0.1:9", "timeout": 0.5})
    report = watch.tick(dispatch=False)
    assert report["decisions"] == {"error": 1} and report["actions"] == []
    evaluation = TriggerEvaluation.objects.get(deployment=dep)
    assert evaluation.decision == "error" and "did not answer" in evaluation.detail
    assert Deployment.objects.get(pk=dep.pk).status == "succeeded"


@pytest.mark.django_db
def test_deployment_create__trigger_on_a_metric_the_provider_lacks__refused_with_the_known_ones(users, envs,
                                                                                              script_target):
    from pmrelease import errors

    release = make_release(by=users["dev"], envs=[envs["development"]])
    services.release_approve(release=release, by=users["approver"])
    with pytest.raises(errors.ValidationFailed) as exc:
        deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                      dispatch=False, parameters={"rollback_triggers": [
                                          {"metric": "erorr_rate", "operator": ">", "threshold": 0.1}]})
    assert "'erorr_rate' is not a metric of this environment's provider (known: error_rate, response_time_p95)" \
        in exc.value.text()
    assert not Deployment.objects.filter(release=release).exists()


@pytest.mark.django_db
def test_effective_triggers__override_release_environment_in_that_order(users, envs, script_target):
    from releases import environments

    environments.trigger_save(environment=envs["development"], by=users["ops"],
                              data={"metric": "error_rate", "operator": ">", "threshold": 0.3})
    plain = deployed(users, envs, run=False, trigger=None)
    assert [str(t) for t in plain.triggers.all()] == ["error_rate > 0.1 for 6 s → rollback"]  # the parameter
    release = make_release(by=users["dev"], envs=[envs["development"]], plan={
        "rollback_steps": [{"order": 1, "description": "undo", "verification": "ok"}],
        "rollback_triggers": [{"metric": "error_rate", "operator": ">", "threshold": 0.2, "duration": 60}]})
    services.release_approve(release=release, by=users["approver"])
    engine.run_inline(plain.pk)
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        dispatch=False)
    assert [str(t) for t in dep.triggers.all()] == ["error_rate > 0.2 for 60 s → rollback"]  # the release's
    engine.run_inline(dep.pk)
    other = make_release(by=users["dev"], envs=[envs["development"]])
    services.release_approve(release=other, by=users["approver"])
    dep = deployments.deployment_create(release=other, environment=envs["development"], by=users["ops"],
                                        dispatch=False)
    assert [str(t) for t in dep.triggers.all()] == ["error_rate > 0.3 → rollback"]  # the environment's


@pytest.mark.django_db(transaction=True)
def test_watch__two_ticks_at_once__the_trigger_fires_once(users, envs, script_target, fine_buckets):
    """Two beats (or a beat and a slow worker) tick together: the deployment's row lock (PostgreSQL) or the
    database's write lock (SQLite) orders them; the second sees the rollback and the trigger's last firing."""
    dep = deployed(users, envs, bake_minutes=10, trigger={**TRIGGER, "cooldown": 60})
    now = time.time()
    push(envs, dep.release.version, [0.5] * 8, end=now)
    barrier, reports = threading.Barrier(2), []

    def tick():
        try:
            barrier.wait(timeout=10)
            reports.append(watch.tick(now=now, dispatch=False))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(len(r["actions"]) for r in reports) == [0, 1]
    assert AuditEvent.objects.filter(action="deployment.trigger_fired").count() == 1
    assert Deployment.objects.get(pk=dep.pk).status == "rolling_back"
    assert Release.objects.get(pk=dep.release_id).status in ("deployed", "deploying")
    assert mail.outbox == []


@pytest.mark.django_db
def test_watch__compare_stable__canary_twice_the_stable_error_rate_fires(users, envs, script_target, fine_buckets):
    first = deployed(users, envs, version="5.0.0", trigger={**TRIGGER, "threshold": 1})
    assert first.status == "succeeded"
    dep = deployed(users, envs, bake_minutes=10, version="5.1.0",
                   trigger={**TRIGGER, "compare": "stable", "threshold": 2.0})
    assert dep.previous_version == "5.0.0"
    now = time.time()
    push(envs, "5.0.0", [0.02] * 8, end=now)
    push(envs, "5.1.0", [0.03] * 8, end=now)  # 1.5× the stable version: fine
    assert watch.tick(now=now, dispatch=False)["actions"] == []
    ok = TriggerEvaluation.objects.get(deployment=dep)
    assert ok.value == pytest.approx(1.5) and ok.baseline == pytest.approx(0.02)
    push(envs, "5.0.0", [0.02] * 8, end=now + 8)
    push(envs, "5.1.0", [0.05] * 8, end=now + 8)  # 2.5×: sustained over the duration
    assert watch.tick(now=now + 8, dispatch=False)["actions"] == [("rollback", dep.pk)]
