"""Deployments over the REST API: create, actions, gate results as JSON or JUnit XML."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from releases.deploy import engine
from releases.models import Deployment, GateResult

pytestmark = pytest.mark.django_db

JUNIT_FAILING = b"""<testsuite name="api"><testcase name="a"/><testcase name="b"><failure/></testcase>
<testcase name="c"><skipped/></testcase></testsuite>"""


def create(api, user, release, env="development", **extra):
    return api(user).post("/api/v1/deployments/", {"release": release.version, "environment": env, **extra},
                          format="json")


def test_create__ops__201_with_planned_steps(api, users, envs, sim_targets, approved_release):
    release = approved_release()
    response = create(api, users["ops"], release, strategy="canary", parameters={"steps": [20, 100], "pause": 0})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "running" and body["backend"] == "simulation"
    assert [s["kind"] for s in body["steps"]][:2] == ["canary", "health_check"]
    assert body["progress"] == {"done": 0, "total": len(body["steps"]), "percent": 0}


def test_create__promotion_rule_and_no_change__409_with_every_reason(api, users, envs, sim_targets, approved_release):
    response = create(api, users["ops"], approved_release(), env="production")
    assert response.status_code == 409
    assert response.json()["reasons"] == [
        "production needs a successful deployment to staging first (promotion path)",
        "production requires an approved change covering release 0.1.0: create one (or an emergency change) and "
        "link the release"]


def test_create__developer_to_staging__403(api, users, envs, sim_targets, approved_release):
    assert create(api, users["dev"], approved_release(), env="staging").status_code == 403


@pytest.mark.parametrize(("extra", "field"), [
    ({"strategy": "yolo"}, "strategy"),
    ({"strategy": "canary", "parameters": {"steps": "fast"}}, "parameters"),
    ({"parameters": [1, 2]}, "parameters"),
])
def test_create__bad_input__400(api, users, envs, sim_targets, approved_release, extra, field):
    response = create(api, users["ops"], approved_release(), **extra)
    assert response.status_code == 400 and field in response.json()
    assert not Deployment.objects.exists()


def test_actions__abort_without_reason__400_then_200(api, users, envs, sim_targets, approved_release):
    dep_id = create(api, users["ops"], approved_release(), strategy="canary", parameters={"pause": None}).json()["id"]
    client = api(users["ops"])
    assert client.post(f"/api/v1/deployments/{dep_id}/abort/", {}, format="json").status_code == 400
    assert client.post(f"/api/v1/deployments/{dep_id}/promote/", {}, format="json").status_code == 409
    ok = client.post(f"/api/v1/deployments/{dep_id}/abort/", {"reason": "bad build"}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "rolling_back"


def test_gate_result__json_counts__stored(api, users, envs, sim_targets, seed_gates, approved_release):
    dep_id = create(api, users["ops"], approved_release()).json()["id"]
    response = api(users["dev"]).post(f"/api/v1/deployments/{dep_id}/gates/unit-tests/results/",
                                      {"passed": 120, "failed": 0, "url": "https://ci.example/run/1"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "passed" and response.json()["tests"] == 120


def test_gate_result__json_nested_990_deep__400(api, users, envs, sim_targets, seed_gates, approved_release):
    """The gate-result action lists its own parsers: the depth-bounded JSON parser among them."""
    dep_id = create(api, users["ops"], approved_release()).json()["id"]
    response = api(users["dev"]).post(f"/api/v1/deployments/{dep_id}/gates/unit-tests/results/",
                                      "[" * 990 + "]" * 990, content_type="application/json")
    assert response.status_code == 400 and "deeper than 64" in response.json()["detail"], response.content


def test_gate_result__junit_upload_with_failures__counted(api, users, envs, sim_targets, seed_gates,
                                                          approved_release):
    dep_id = create(api, users["ops"], approved_release()).json()["id"]
    upload = SimpleUploadedFile("report.xml", JUNIT_FAILING, content_type="application/xml")
    response = api(users["dev"]).post(f"/api/v1/deployments/{dep_id}/gates/unit-tests/results/",
                                      {"junit": upload}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["tests"], body["passed"], body["failed"], body["skipped"]) == ("failed", 3, 1, 1, 1)
    assert body["details"]["failed_cases"] == ["b"]


def test_gate_result__raw_xml_body__accepted(api, users, envs, sim_targets, seed_gates, approved_release):
    dep_id = create(api, users["ops"], approved_release()).json()["id"]
    response = api(users["dev"]).post(f"/api/v1/deployments/{dep_id}/gates/unit-tests/results/",
                                      JUNIT_FAILING, content_type="application/xml")
    assert response.status_code == 201 and response.json()["source"] == "junit"


@pytest.mark.parametrize("payload", [b"<testsuite><testcase name='x'>", b"garbage", b""])
def test_gate_result__malformed_junit__400_nothing_stored(api, users, envs, sim_targets, seed_gates,
                                                         approved_release, payload):
    dep_id = create(api, users["ops"], approved_release()).json()["id"]
    upload = SimpleUploadedFile("report.xml", payload, content_type="application/xml")
    response = api(users["dev"]).post(f"/api/v1/deployments/{dep_id}/gates/unit-tests/results/",
                                      {"junit": upload}, format="multipart")
    assert response.status_code == 400
    assert GateResult.objects.count() == 0


@pytest.mark.parametrize(("payload", "status"), [
    ({"passed": -1, "failed": 0}, 400), ({"passed": "many", "failed": 0}, 400), ({}, 400),
    ({"passed": 2**70, "failed": 0}, 400),
])
def test_gate_result__bad_json__400(api, users, envs, sim_targets, seed_gates, approved_release, payload, status):
    dep_id = create(api, users["ops"], approved_release()).json()["id"]
    response = api(users["dev"]).post(f"/api/v1/deployments/{dep_id}/gates/unit-tests/results/", payload,
                                      format="json")
    assert response.status_code == status and GateResult.objects.count() == 0


def test_gate_result__unknown_gate__400_lists_gates(api, users, envs, sim_targets, seed_gates, approved_release):
    dep_id = create(api, users["ops"], approved_release()).json()["id"]
    response = api(users["dev"]).post(f"/api/v1/deployments/{dep_id}/gates/smoke/results/",
                                      {"passed": 1, "failed": 0}, format="json")
    assert response.status_code == 400 and "unit-tests" in response.json()["detail"]


def test_gate_result__support_user_without_access__403(api, users, envs, sim_targets, seed_gates,
                                                       approved_release):
    dep_id = create(api, users["ops"], approved_release()).json()["id"]
    response = api(users["product"]).post(f"/api/v1/deployments/{dep_id}/gates/unit-tests/results/",
                                          {"passed": 1, "failed": 0}, format="json")
    assert response.status_code == 403


def test_gate_override__warn_gate__via_api(api, users, envs, sim_targets, seed_gates, approved_release):
    release = approved_release(type="hotfix")
    dep_id = create(api, users["ops"], release, env="staging").json()["id"]
    client = api(users["ops"])
    for slug in ("integration-tests", "security-tests", "performance-tests"):
        client.post(f"/api/v1/deployments/{dep_id}/gates/{slug}/results/", {"passed": 5, "failed": 0}, format="json")
    client.post(f"/api/v1/deployments/{dep_id}/gates/e2e-tests/results/", {"passed": 5, "failed": 2}, format="json")
    engine.run_inline(dep_id)
    assert client.get(f"/api/v1/deployments/{dep_id}/").json()["status"] == "awaiting_approval"
    refused = client.post(f"/api/v1/deployments/{dep_id}/gates/security-tests/override/", {"reason": "x"},
                          format="json")
    assert refused.status_code == 403
    ok = client.post(f"/api/v1/deployments/{dep_id}/gates/e2e-tests/override/", {"reason": "known flake"},
                     format="json")
    assert ok.status_code == 201 and ok.json()["status"] == "overridden"
    assert engine.run_inline(dep_id).status == "succeeded"


def test_list__developer__sees_no_production_deployments(api, users, envs, sim_targets, approved_release):
    release = approved_release(type="hotfix")
    engine.run_inline(create(api, users["ops"], release, env="staging").json()["id"])
    create(api, users["ops"], release, env="production")
    envs_seen = {d["environment"] for d in api(users["dev"]).get("/api/v1/deployments/").json()["results"]}
    assert envs_seen == {"staging"}


def test_evaluations__api__cursor_pages_newest_first(api, users, envs, sim_targets, approved_release, settings):
    import time

    from releases.deploy import engine, watch
    from releases.deploy import services as deployments

    settings.METRICS_BUILTIN_BUCKET_SECONDS = 1
    envs["development"].bake_minutes = 5
    envs["development"].save(update_fields=["bake_minutes"])
    dep = deployments.deployment_create(
        release=approved_release(), environment=envs["development"], by=users["ops"], dispatch=False,
        parameters={"rollback_triggers": [{"metric": "error_rate", "operator": ">", "threshold": 0.1}]})
    dep = engine.run_inline(dep.pk)
    now = time.time()
    for i in range(3):
        watch.tick(now=now + i, dispatch=False)
    client = api(users["dev"])
    body = client.get(f"/api/v1/deployments/{dep.pk}/").json()
    assert body["triggers"][0]["metric"] == "error_rate" and body["triggers"][0]["last_fired_at"] is None
    page = client.get(f"/api/v1/deployments/{dep.pk}/evaluations/?page_size=2").json()
    assert [e["decision"] for e in page["results"]] == ["ok", "ok"] and page["next"]
    assert page["results"][0]["at"] > page["results"][1]["at"] and page["results"][0]["value"] == 0.004
    rest = client.get(page["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
