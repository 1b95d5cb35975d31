"""Guarded flag ramps: a flag's monitoring alerts judged by the rollback watch while its gradual ramp runs (and
through the bake time after it completes), on the builtin provider's samples for the flag; a sustained breach
pauses or reverts the ramp, audited; spikes, other flags' samples and provider errors never do."""
import datetime as dt
import threading
import time

import pytest
from django.db import connections
from django.urls import reverse

from flags import guards, services
from flags.models import GradualRollout, GuardEvaluation
from monitoring.metrics import services as metrics
from monitoring.metrics.models import MetricsConfig
from pmrelease import errors
from pmrelease.models import AuditEvent
from releases.deploy import watch
from tests.prometheus_support import needs_prometheus

GUARD = {"metric": "error_rate", "operator": ">", "threshold": 0.1, "duration": 6}
VERSION = "3.1.0"


@pytest.fixture
def fine_buckets(settings):
    settings.METRICS_BUILTIN_BUCKET_SECONDS = 1
    settings.MONITORING_TICK_SECONDS = 1


@pytest.fixture
def staging(envs):
    env = envs["staging"]
    env.current_version = VERSION
    env.bake_minutes = 10
    env.save(update_fields=["current_version", "bake_minutes"])
    return env


def ramping(make_flag, staging, *, guard=None, key="checkout", steps="10, 50@60, 100@120"):
    flag = make_flag(key, enabled={"staging": False}, monitoring_alerts=[guard or GUARD])
    return services.ramp_start(state=services.state_for(flag, staging), steps=steps)


def push(env, values, *, end, flag="checkout", version=VERSION, metric="error_rate"):
    """One sample a second, the last at ``end`` (unix seconds)."""
    metrics.ingest(environment_id=env.pk, samples=[
        {"metric": metric, "value": v, "version": version, "flag": flag,
         "at": dt.datetime.fromtimestamp(end - (len(values) - 1 - i), tz=dt.UTC).isoformat()}
        for i, v in enumerate(values)])


def flag_report(now):
    """The flags' part of one watch round at ``now`` (a few ms after the samples pushed "at" it)."""
    return watch.tick(now=now + 0.005, dispatch=False)["flag_ramps"]


@pytest.mark.django_db
def test_guards__validated_naming_the_guard_and_field(make_flag):
    with pytest.raises(errors.ValidationFailed) as exc:
        make_flag("bad", monitoring_alerts=[GUARD, {"metric": "error_rate", "operator": "~", "threshold": "high",
                                                    "action": "explode"}])
    text = exc.value.message
    assert "monitoring alerts[1].operator" in text and "monitoring alerts[1].threshold" in text
    assert "monitoring alerts[1].action: one of pause_rollout, revert_rollout" in text
    with pytest.raises(errors.ValidationFailed, match=r"monitoring alerts\[0\]: unknown fields colour"):
        make_flag("bad2", monitoring_alerts=[{**GUARD, "colour": "red"}])
    assert make_flag("good", monitoring_alerts=[GUARD, {**GUARD, "action": "revert_rollout", "cooldown": 5}])


@pytest.mark.django_db
def test_guard__spike_then_sustained_breach__pauses_the_ramp_once_audited(make_flag, staging, fine_buckets):
    ramp = ramping(make_flag, staging)
    now = time.time()
    push(staging, [0.01] * 5 + [0.5, 0.5] + [0.01] * 3, end=now - 10)  # a 2 s spike
    push(staging, [0.01] * 4 + [0.5] * 4, end=now - 1)  # breaching for 4 s: not yet
    report = flag_report(now - 1)
    assert report["decisions"] == {"breaching": 1} and report["actions"] == []
    push(staging, [0.5] * 4, end=now + 3 - 1e-3)
    report = flag_report(now + 3)
    assert report["decisions"] == {"fired": 1} and report["actions"] == [("paused", ramp.pk)]
    ramp.refresh_from_db()
    assert ramp.status == "paused" and ramp.current_percentage == 10  # stopped where it was
    event = AuditEvent.objects.get(action="flag.guard_fired")
    assert event.after["action"] == "paused" and event.after["version"] == VERSION and event.actor is None
    assert AuditEvent.objects.filter(action="flag.ramp.pause", reason__startswith="guard fired: error_rate > 0.1 "
                                                                               "for 6 s").exists()
    assert list(GuardEvaluation.objects.filter(ramp=ramp).order_by("at").values_list("decision", "action")) == [
        ("breaching", ""), ("fired", "paused")]
    assert flag_report(now + 4) == {"ramps": 0, "guards": 0, "decisions": {}, "actions": []}  # paused: not watched


@pytest.mark.django_db
def test_guard__revert_action__restores_the_flag_as_before_the_ramp(make_flag, staging, fine_buckets):
    ramp = ramping(make_flag, staging, guard={**GUARD, "action": "revert_rollout", "duration": 0})
    state = ramp.state
    state.refresh_from_db()
    assert state.enabled
    now = time.time()
    push(staging, [0.3], end=now)
    assert flag_report(now)["actions"] == [("reverted", ramp.pk)]
    ramp.refresh_from_db()
    state.refresh_from_db()
    assert ramp.status == "reverted" and not state.enabled


@pytest.mark.django_db
def test_guard__only_the_flags_own_samples_at_the_version_served_count(make_flag, staging, fine_buckets):
    ramp = ramping(make_flag, staging, guard={**GUARD, "duration": 0})
    now = time.time()
    push(staging, [0.9] * 3, end=now, flag="another-flag")
    push(staging, [0.9] * 3, end=now, flag="")  # the application's, not the flag's
    push(staging, [0.9] * 3, end=now, version="3.0.9")  # another version
    report = flag_report(now)
    assert report["decisions"] == {"no_data": 1} and report["actions"] == []  # the guard's no-data policy: hold
    push(staging, [0.01], end=now + 1)
    assert flag_report(now + 1)["decisions"] == {"ok": 1}
    ramp.refresh_from_db()
    assert ramp.status == "running"


@pytest.mark.django_db
def test_guard__completed_ramp__revert_guards_watched_through_the_bake_time(make_flag, staging, fine_buckets):
    flag = make_flag("checkout", enabled={"staging": False}, monitoring_alerts=[
        {**GUARD, "duration": 0}, {**GUARD, "duration": 0, "action": "revert_rollout"}])
    ramp = services.ramp_start(state=services.state_for(flag, staging), steps="100",
                               now=dt.datetime.fromtimestamp(time.time() - 20 * 60, tz=dt.UTC))
    assert ramp.status == "completed" and ramp.completed_at
    now = ramp.completed_at.timestamp() + 60
    push(staging, [0.01], end=now)
    report = flag_report(now)
    assert report["guards"] == 1 and report["decisions"] == {"ok": 1}  # a completed ramp cannot be paused
    later = ramp.completed_at.timestamp() + 11 * 60  # past the ten minutes of bake time
    push(staging, [0.9], end=later)
    assert flag_report(later)["ramps"] == 0
    push(staging, [0.9], end=now + 1)
    assert flag_report(now + 1)["actions"] == [("reverted", ramp.pk)]


@pytest.mark.django_db
def test_guard__provider_unreachable__error_recorded_and_the_ramp_goes_on(make_flag, staging, fine_buckets):
    MetricsConfig.objects.update_or_create(environment=staging, defaults={
        "kind": "prometheus", "url": "http://127.0.0.1:9", "timeout": 0.5})
    ramp = ramping(make_flag, staging, guard={**GUARD, "no_data": "breach", "duration": 0})
    report = flag_report(time.time())
    assert report["decisions"] == {"error": 1} and report["actions"] == []
    evaluation = GuardEvaluation.objects.get(ramp=ramp)
    assert "did not answer" in evaluation.detail
    ramp.refresh_from_db()
    assert ramp.status == "running"


@pytest.mark.django_db
def test_guard__cooldown_after_a_resume(make_flag, staging, fine_buckets, users):
    ramp = ramping(make_flag, staging, guard={**GUARD, "duration": 0, "cooldown": 5})
    now = time.time() - 400
    push(staging, [0.9], end=now)
    assert flag_report(now)["actions"] == [("paused", ramp.pk)]
    services.ramp_resume(ramp=ramp, by=users["ops"], reason="fixed")
    push(staging, [0.9], end=now + 60)
    report = flag_report(now + 60)
    assert report["decisions"] == {"cooling_down": 1} and report["actions"] == []
    push(staging, [0.9], end=now + 301)
    assert flag_report(now + 301)["actions"] == [("paused", ramp.pk)]


@pytest.mark.django_db(transaction=True)
def test_guard__two_ticks_at_once__act_once(make_flag, staging, fine_buckets):
    ramp = ramping(make_flag, staging, guard={**GUARD, "duration": 0})
    now = time.time()
    push(staging, [0.9] * 3, end=now)
    barrier, reports = threading.Barrier(2), []

    def tick():
        try:
            barrier.wait(timeout=10)
            reports.append(guards.tick(now=now + 0.005, dispatch=False))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(len(r["actions"]) for r in reports) == [0, 1]
    assert AuditEvent.objects.filter(action="flag.guard_fired").count() == 1
    assert GradualRollout.objects.get(pk=ramp.pk).status == "paused"


@pytest.mark.django_db
def test_guard__charts_on_the_flags_environment_page(client, users, make_flag, staging, fine_buckets):
    ramp = ramping(make_flag, staging, guard={**GUARD, "duration": 0})
    now = time.time()
    for i, value in enumerate([0.01, 0.02, 0.5]):
        push(staging, [value], end=now + i)
        flag_report(now + i)
    client.force_login(users["admin"])
    page = client.get(reverse("admin:flags_featureflag_state", args=[ramp.state.flag.pk, staging.name]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "Guards of the gradual rollout" in body
    assert body.count('class="trigger-chart"') == 1 and "error_rate &gt; 0.1 → pause rollout · 3 evaluations" in body


FLAG_ERROR_RATE = (
    'sum by (version) (rate(http_requests_total{app="{app}",version=~"{versions}",flag="{flag}",status=~"5.."}'
    '[{window}])) / sum by (version) (rate(http_requests_total{app="{app}",version=~"{versions}",flag="{flag}"}'
    '[{window}]))')


@pytest.fixture(scope="module")
def prom():
    from tests.prometheus_support import Exporter, prometheus_scraping

    exporter = Exporter()
    with prometheus_scraping(exporter) as url:
        yield exporter, url
    exporter.close()


@needs_prometheus
@pytest.mark.integration
@pytest.mark.django_db
def test_guard__real_prometheus__the_flags_key_in_its_template(prom, make_flag, staging, users, settings):
    """A team's template selects the requests served with the flag (``{flag}``); another flag's errors do not
    count, this flag's sustained ones pause its ramp."""
    from tests.prometheus_support import wait_for_series

    exporter, url = prom
    settings.METRICS_RATE_WINDOW = "3s"
    metrics.config_save(environment=staging, by=users["admin"], data={
        "kind": "prometheus", "url": url, "templates": {"flag_error_rate": FLAG_ERROR_RATE}})
    ramp = ramping(make_flag, staging, guard={"metric": "flag_error_rate", "operator": ">", "threshold": 0.1,
                                              "duration": 3})
    exporter.set_ratio(VERSION, 0.01, flag="checkout")
    exporter.set_ratio(VERSION, 0.9, flag="another-flag")
    assert wait_for_series(url, f'http_requests_total{{flag="checkout",version="{VERSION}"}}')
    time.sleep(5)
    report = watch.tick(dispatch=False)["flag_ramps"]
    assert report["decisions"] == {"ok": 1}, list(GuardEvaluation.objects.values_list("detail", flat=True))
    exporter.set_ratio(VERSION, 0.8, flag="checkout")
    deadline, report = time.monotonic() + 20, {}
    while time.monotonic() < deadline and not report.get("actions"):
        time.sleep(0.5)
        report = watch.tick(dispatch=False)["flag_ramps"]
    assert report["actions"] == [("paused", ramp.pk)]
    assert GuardEvaluation.objects.get(ramp=ramp, decision="fired").value > 0.1
