"""DORA from the portal's own history: deployments, change requests, incidents → the API and the admin page."""
import datetime as dt

import pytest
import time_machine

from changes.models import ChangeRequest
from monitoring.statuspage.models import Incident
from releases.models import Deployment, DeploymentStep, Release
from tests.factories import ReleaseFactory, covering_change

UTC = dt.UTC
NOW = dt.datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


def at(day, hour=0, minute=0, month=3):
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


def deployment(env, *, status, started, finished=None, created=None, automatic=False):
    release = ReleaseFactory()
    Release.objects.filter(pk=release.pk).update(created_at=created or started - dt.timedelta(hours=1))
    release.refresh_from_db()
    return Deployment.objects.create(release=release, environment=env, strategy="rolling-update",
                                     backend="simulation", status=status, started_at=started, finished_at=finished,
                                     rolled_back_automatically=automatic, created_at=started)


@pytest.fixture
def history(envs, users):
    prod, staging = envs["production"], envs["staging"]
    # 1: release created 09:45, succeeded 10:30 → 45 min
    deployment(prod, status="succeeded", started=at(2, 10), finished=at(2, 10, 30), created=at(2, 9, 45))
    # 2: a change covering its release was submitted a day before it succeeded → 24 h (the release is older)
    second = deployment(prod, status="succeeded", started=at(5, 11), finished=at(5, 12), created=at(1))
    change = covering_change(second.release, prod, by=users["approver2"], approver=users["approver"])
    ChangeRequest.objects.filter(pk=change.pk).update(submitted_at=at(4, 12))
    # ... and a change submitted after it succeeded (an emergency's paperwork) does not shorten it
    late = covering_change(second.release, prod, by=users["approver2"], approver=users["approver"])
    ChangeRequest.objects.filter(pk=late.pk).update(submitted_at=at(6))
    # 3: rolled back automatically; the rollback steps ran 10:00 → 10:20
    third = deployment(prod, status="rolled_back", started=at(10, 9), finished=at(10, 10, 20), automatic=True)
    DeploymentStep.objects.create(deployment=third, phase="rollback", position=10, kind="rollback", name="undo",
                                  status="succeeded", started_at=at(10, 10), finished_at=at(10, 10, 10))
    DeploymentStep.objects.create(deployment=third, phase="rollback", position=11, kind="verify", name="verify",
                                  status="succeeded", started_at=at(10, 10, 10), finished_at=at(10, 10, 20))
    # 4: succeeded in 2 h, then an incident linked to it: 2 h to resolve
    fourth = deployment(prod, status="succeeded", started=at(12, 14), finished=at(12, 15), created=at(12, 13))
    Incident.objects.create(name="Bounces", deployment=fourth, created_at=at(12, 16), started_at=at(12, 16),
                            resolved_at=at(12, 18), status="resolved")
    deployment(prod, status="failed", started=at(20, 9), finished=at(20, 10))  # 5
    deployment(prod, status="cancelled", started=at(22, 9), finished=at(22, 9))  # 6: nowhere
    deployment(prod, status="succeeded", started=at(25, 9), finished=at(25, 12), created=at(25, 9))  # 7: 3 h
    # an incident the engine opened in production (no deployment): 30 min; one unresolved
    Incident.objects.create(name="Slow API", environment=prod, created_at=at(28), started_at=at(28),
                            resolved_at=at(28, 0, 30), status="resolved")
    Incident.objects.create(name="Queue", environment=prod, created_at=at(29), started_at=at(29))
    # staging: one deployment, elsewhere entirely
    deployment(staging, status="succeeded", started=at(3, 9), finished=at(3, 9, 20), created=at(3, 9))
    return prod


def test_dora_api__history__matches_the_hand_worked_values(history, users, api):
    with time_machine.travel(NOW, tick=False):
        response = api(users["admin"]).get("/api/v1/metrics/dora/?period=month&count=2&environment=production")
    assert response.status_code == 200, response.content
    body = response.json()
    (prod,) = body["environments"]
    assert prod["environment"] == "production" and prod["production"] is True
    march, april = prod["periods"]
    assert march["period"]["label"] == "2026-03"
    assert march["deployment_frequency"] == {"deployments": 4, "per_day": round(4 / 31, 6), "tier": "high"}
    assert march["lead_time"] == {"median_seconds": 9000.0, "samples": 4, "from_change_requests": 1,
                                  "tier": "high"}
    assert march["change_failure_rate"] == {"rate": 0.5, "failed": 3, "deployments": 6, "tier": "low"}
    assert march["time_to_restore"] == {
        "median_seconds": 1800.0, "restorations": 3, "incident_median_seconds": 4500.0,
        "automatic_rollback_median_seconds": 1200.0, "unresolved_incidents": 1, "tier": "elite"}
    assert april["deployment_frequency"]["deployments"] == 0 and april["lead_time"]["tier"] is None
    assert [t["tier"] for t in body["tiers"]["lead_time"]] == ["elite", "high", "medium", "low"]


def test_dora_api__every_environment_by_default__staging_apart(history, users, api):
    with time_machine.travel(NOW, tick=False):
        body = api(users["admin"]).get("/api/v1/metrics/dora/?period=quarter&count=2").json()
    by_name = {e["environment"]: e["periods"][0] for e in body["environments"]}
    assert by_name["staging"]["deployment_frequency"]["deployments"] == 1
    assert by_name["staging"]["lead_time"]["median_seconds"] == 20 * 60
    assert by_name["production"]["deployment_frequency"]["deployments"] == 4


@pytest.mark.parametrize(("query", "field"), [("period=year", "period"), ("count=0", "count"),
                                              ("count=53", "count"), ("count=x", "count"),
                                              ("environment=nowhere", "environment")])
def test_dora_api__bad_parameters__400_naming_them(users, api, query, field):
    response = api(users["admin"]).get(f"/api/v1/metrics/dora/?{query}")
    assert response.status_code == 400
    assert field in str(response.json())


def test_dora_api__anonymous__refused(api, db):
    assert api().get("/api/v1/metrics/dora/").status_code in (401, 403)


def test_dora_admin_page__renders_svg_charts_with_tiers(history, users, client):
    client.force_login(users["admin"])
    with time_machine.travel(NOW, tick=False):
        response = client.get("/admin/monitoring/dorareport/?period=month&count=2")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("<svg") >= 8  # four charts per environment
    assert 'data-tier="low"' in html and 'data-tier="elite"' in html
    assert "2026-03" in html and "<script" not in html.split('id="content-main"')[1]


def test_dora_admin_page__bad_parameters__shows_the_error(users, client):
    client.force_login(users["admin"])
    response = client.get("/admin/monitoring/dorareport/?period=decade")
    assert response.status_code == 200 and "period must be one of" in response.content.decode()


def test_dora_admin_page__without_deployment_view__refused(make_user, client):
    client.force_login(make_user("visitor"))
    assert client.get("/admin/monitoring/dorareport/").status_code == 403
