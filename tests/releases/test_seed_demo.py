"""seed_demo: idempotent, and its deployment history made by the engine at the releases' own dates."""
import pytest
from django.core.management import call_command
from django.utils import timezone

from pmrelease import audit
from releases.models import Deployment, Environment, Release


@pytest.mark.django_db
def test_seed_demo__twice__same_organisation_and_engine_made_history(settings, tmp_path):
    settings.STATUS_PUBLISH_DIR = tmp_path / "status-site"
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    counts = (Release.objects.count(), Deployment.objects.count())
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    assert (Release.objects.count(), Deployment.objects.count()) == counts == (7, 12)
    statuses = dict(Release.objects.values_list("version", "status"))
    # A rollback marks its deployment; the release stays deployed where it still runs.
    assert statuses == {"2.0.0": "deployed", "2.1.0": "deployed", "2.1.1": "deployed", "2.1.2": "deployed",
                        "2.2.0": "approved", "2.2.1": "planned", "2.3.0": "planned"}
    running = dict(Environment.objects.values_list("name", "current_version"))
    assert running == {"local": "", "development": "2.1.2", "qa": "", "staging": "2.1.1", "production": "2.1.0",
                       "dr": "2.1.0"}
    canary = Deployment.objects.get(release__version="2.1.1", environment__name="production")
    assert canary.rolled_back_automatically and "Health checks at 50%" in canary.failure_reason
    gated = Deployment.objects.get(release__version="2.1.2", environment__name="staging")
    assert "blocking gate failed: Security Tests" in gated.failure_reason
    first = Deployment.objects.filter(release__version="2.0.0").order_by("id")
    assert [d.environment.name for d in first] == ["development", "staging", "production"]
    assert (timezone.now() - first.last().finished_at).days >= 39
    assert audit.verify().ok
