"""seed_demo: idempotent, and its deployment history made by the engine at the releases' own dates."""
import pytest
from django.core.management import call_command
from django.utils import timezone

from changes import compliance
from changes.models import ChangeFreeze, ChangeRequest, ChangeWindow
from flags.models import GradualRollout
from pmrelease import audit
from releases.models import Deployment, DeploymentTarget, Environment, GateResult, Release


@pytest.mark.django_db
def test_seed_demo__twice__same_organisation_and_engine_made_history(settings, tmp_path):
    settings.STATUS_PUBLISH_DIR = tmp_path / "status-site"
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    counts = (Release.objects.count(), Deployment.objects.count(), ChangeRequest.objects.count())
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    assert (Release.objects.count(), Deployment.objects.count(), ChangeRequest.objects.count()) == counts == (
        8, 15, 15)
    statuses = dict(Release.objects.values_list("version", "status"))
    # A rollback marks its deployment; the release stays deployed where it still runs.
    assert statuses == {"2.0.0": "deployed", "2.1.0": "deployed", "2.1.1": "deployed", "2.1.2": "deployed",
                        "2.1.3": "deployed", "2.2.0": "approved", "2.2.1": "planned", "2.3.0": "planned"}
    running = dict(Environment.objects.values_list("name", "current_version"))
    assert running == {"local": "", "development": "2.1.3", "qa": "", "staging": "2.1.3", "production": "2.1.0",
                       "dr": "2.1.0"}
    # 2.1.3 succeeded in production, then its bake-time watch saw a sustained error-rate breach: rolled back
    baked = Deployment.objects.get(release__version="2.1.3", environment__name="production")
    assert baked.status == "rolled_back" and baked.rolled_back_automatically
    assert "post-success rollback trigger fired: error_rate > 0.1 for 300 s" in baked.failure_reason
    assert baked.evaluations.filter(decision="fired").count() == 1
    assert baked.evaluations.filter(decision="ok").exists() and baked.evaluations.filter(decision="breaching").exists()
    canary = Deployment.objects.get(release__version="2.1.1", environment__name="production")
    assert canary.rolled_back_automatically and "Health checks at 50%" in canary.failure_reason
    gated = Deployment.objects.get(release__version="2.1.2", environment__name="staging")
    assert "blocking gate failed: Security Tests" in gated.failure_reason
    first = Deployment.objects.filter(release__version="2.0.0").order_by("id")
    assert [d.environment.name for d in first] == ["development", "staging", "production"]
    assert (timezone.now() - first.last().finished_at).days >= 39
    # a flag's ramp its guard paused at 50 %, after the error rate of the flag's requests stayed above 5 %
    guarded = GradualRollout.objects.get(state__flag__key="send-time-optimizer")
    assert guarded.status == "paused" and guarded.current_percentage == 50
    assert guarded.guard_evaluations.filter(decision="fired", action="paused").count() == 1
    assert guarded.guard_evaluations.filter(decision="ok").count() > 20
    # the walkthrough's deployments get their gate results from the simulated CI (staging: one failing E2E run)
    ci = {t.environment.name: t.config["simulation"]["ci"] for t in DeploymentTarget.objects.all()}
    assert set(ci) == set(running) and all(c["after_seconds"] == 5 for c in ci.values())
    assert ci["staging"]["fail"] == {"e2e-tests": 1} and ci["development"]["fail"] == {}
    assert not GateResult.objects.filter(source="simulated").exists()  # the history's results are CI's own
    assert audit.verify().ok


@pytest.mark.django_db
def test_seed_demo__changes_in_every_state_windows_freeze_and_a_compliance_exception(settings, tmp_path):
    import datetime as dt

    settings.STATUS_PUBLISH_DIR = tmp_path / "status-site"
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    states = set(ChangeRequest.objects.values_list("status", flat=True))
    assert states == {"draft", "submitted", "in_review", "approved", "scheduled", "validating", "closed", "failed",
                      "cancelled"}  # implementing lasts only while a deployment runs
    classes = set(ChangeRequest.objects.values_list("change_class", flat=True))
    assert classes == {"normal", "standard", "emergency"}
    assert ChangeWindow.objects.count() == 2 and ChangeFreeze.objects.count() == 2
    # every production and dr deployment of the history went through the gate with its change
    gated = Deployment.objects.filter(environment__name__in=["production", "dr"])
    assert gated.count() == 5
    report = compliance.build(timezone.now() - dt.timedelta(days=365), timezone.now() + dt.timedelta(hours=1))
    assert report.uncovered == []
    codes = [code for row in report.rows for code, _ in row.exceptions]
    assert codes.count("self_approval_refused") == 1
    assert report.audit_intact
