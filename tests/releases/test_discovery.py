"""Discovery: an environment's gates, health checks, target kind, metric provider, current version and last
deployment (never a secret); the environment list as the dashboard's data; the admin's deployment board."""
import pytest

from releases.deploy import engine
from releases.deploy import services as deployments
from releases.models import DeploymentTarget, HealthCheck

pytestmark = pytest.mark.django_db


def test_environment_detail__gates_checks_target_provider_current_no_secrets(api, users, envs, sim_targets,
                                                                             seed_gates, approved_release):
    HealthCheck.objects.create(environment=envs["staging"], name="api", url="https://svc:hunter22@staging.example/h")
    DeploymentTarget.objects.filter(environment=envs["staging"]).update(config={"token": "s3cr3t-value"})
    release = approved_release()
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        dispatch=False)
    deployments.gate_report(deployment=dep, gate=seed_gates["Unit Tests"], by=users["ops"], passed=3, failed=0,
                            dispatch=False)
    engine.run_inline(dep.pk)
    response = api(users["ops"]).get("/api/v1/environments/staging/")
    assert response.status_code == 200
    body = response.json()
    assert [g["slug"] for g in body["testing_gates"]] == ["integration-tests", "e2e-tests", "performance-tests",
                                                          "security-tests"]
    assert body["testing_gates"][1] | {"id": 0} == {
        "id": 0, "slug": "e2e-tests", "name": "E2E Tests", "tests": ["user-journey-tests", "critical-path-tests"],
        "required": True, "timeout": 30, "on_failure": "warn", "position": 2}
    assert body["health_checks"][0]["name"] == "api" and "hunter22" not in response.content.decode()
    assert "s3cr3t-value" not in response.content.decode()
    assert body["deployment_target"] == {"backend": "simulation", "default_strategy": "rolling-update",
                                         "concurrency": "queue"}
    assert body["metric_provider"] == {"kind": "builtin"}
    assert body["last_deployment"] is None and body["current_version"] == ""
    development = api(users["ops"]).get("/api/v1/environments/development/").json()
    assert development["current_version"] == release.version
    assert development["last_deployment"]["id"] == dep.pk and development["last_deployment"]["status"] == "succeeded"
    assert development["last_deployment"]["release"] == release.version
    assert development["last_deployment"]["requested_by"] == "ops"


def test_environment_list__dashboard_data_in_constant_queries(api, users, envs, sim_targets, approved_release,
                                                               django_assert_max_num_queries):
    release = approved_release()
    engine.run_inline(deployments.deployment_create(release=release, environment=envs["development"],
                                                    by=users["ops"], dispatch=False).pk)
    client = api(users["admin"])
    client.get("/api/v1/environments/")  # warm caches (content types, permissions)
    with django_assert_max_num_queries(12):
        body = client.get("/api/v1/environments/").json()
    by_name = {e["name"]: e for e in body["results"]}
    assert [e["name"] for e in body["results"]][:4] == ["local", "development", "qa", "staging"]
    dev = by_name["development"]
    assert dev["current_version"] == release.version and dev["current_since"]
    assert dev["last_deployment"]["status"] == "succeeded" and dev["last_deployment"]["requested_by"] == "ops"
    assert by_name["production"]["last_deployment"] is None and "testing_gates" not in dev


def test_board__cells_are_latest_deployment_per_release_and_environment(users, envs, sim_targets,
                                                                        approved_release):
    from releases import selectors

    old = approved_release(version="1.0.0")
    new = approved_release(version="1.1.0")
    engine.run_inline(deployments.deployment_create(release=old, environment=envs["development"], by=users["ops"],
                                                    dispatch=False).pk)
    running = deployments.deployment_create(release=new, environment=envs["development"], by=users["ops"],
                                            dispatch=False)
    board = selectors.deployment_board(users["approver"])
    names = [e.name for e in board["environments"]]
    assert names == sorted(names, key=lambda n: envs[n].position) and "production" in names
    dev, qa = names.index("development"), names.index("qa")
    rows = {row["release"].version: row for row in board["rows"]}
    assert list(rows) == ["1.1.0", "1.0.0"]
    assert rows["1.1.0"]["cells"][dev]["deployment"] == running and rows["1.1.0"]["cells"][qa]["deployment"] is None
    assert rows["1.0.0"]["cells"][dev]["deployment"].status == "succeeded" and rows["1.0.0"]["cells"][dev]["current"]


def test_admin_index__shows_the_board_with_links(client, users, envs, sim_targets, approved_release):
    release = approved_release()
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        dispatch=False)
    client.force_login(users["approver"])
    page = client.get("/admin/").content.decode()
    assert 'id="deployment-board"' in page and f"/admin/releases/deployment/{dep.pk}/change/" in page
    assert f"/admin/releases/release/{release.pk}/change/" in page and "Running" in page
    assert "cdn" not in page.lower()
