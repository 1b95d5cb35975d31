"""REST API: releases and environments, with 400/403/409 answers."""
import pytest

from pmrelease.models import AuditEvent
from releases.models import Release
from tests.factories import make_release

pytestmark = pytest.mark.django_db

PLAN = {
    "prerequisites": [{"type": "database", "description": "Migration rehearsed", "status": "completed",
                       "owner": "DBA"}],
    "rollback_steps": [{"order": 1, "description": "Undo", "verification": "ok", "timeout": 60,
                        "on_failure": "stop"}],
    "risk_assessment": {"impact": "medium", "likelihood": "low", "mitigation": ["Canary first"],
                        "contingency": ["Roll back"]},
    "changes": [{"kind": "feature", "summary": "New editor"}],
}


def test_create_release__valid__201_with_proposed_version_and_plan(api, users, envs):
    make_release(by=users["dev"], envs=[envs["development"]], version="2.1.0")
    response = api(users["planner"]).post("/api/v1/releases/", {
        "type": "minor", "title": "Editor", "environments": ["development", "staging", "production"], **PLAN,
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["version"] == "2.2.0" and body["status"] == "planned"
    assert body["risk_assessment"]["level"] == "low"
    assert body["risk_assessment"]["mitigation"] == ["Canary first"]
    assert body["approval_blockers"] == ["0 of 1 required approvals"]


@pytest.mark.parametrize(("payload", "field"), [
    ({"type": "minor", "title": "x", "version": "2.1"}, "version"),
    ({"type": "weekly", "title": "x"}, "type"),
    ({"type": "minor"}, "title"),
    ({"type": "minor", "title": "x", "environments": ["moon"]}, "environments"),
    ({"type": "minor", "title": "x", "rollback_steps": [{"order": "first"}]}, "rollback_steps"),
    ({"type": "minor", "title": "x", "risk_assessment": {"impact": "huge", "likelihood": "low"}}, "risk_assessment"),
])
def test_create_release__bad_input__400_names_the_field(api, users, envs, payload, field):
    response = api(users["dev"]).post("/api/v1/releases/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Release.objects.count() == 0


def test_create_release__duplicate_version__400(api, users, envs):
    make_release(by=users["dev"], envs=[envs["development"]], version="2.1.0")
    response = api(users["dev"]).post("/api/v1/releases/", {"type": "patch", "title": "x", "version": "2.1.0"},
                                      format="json")
    assert response.status_code == 400
    assert response.json()["version"] == ["release 2.1.0 already exists"]


def test_create_release__malformed_json__400(api, users, envs):
    response = api(users["dev"]).post("/api/v1/releases/", "{not json", content_type="application/json")
    assert response.status_code == 400


def test_create_release__support_role__403(api, users, envs):
    response = api(users["support"]).post("/api/v1/releases/", {"type": "minor", "title": "x"}, format="json")
    assert response.status_code == 403


def test_unauthenticated__401_with_the_scheme_to_use(api, envs):
    response = api().get("/api/v1/releases/")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"


def test_approve__approver__200_and_approved(api, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    response = api(users["approver"]).post(f"/api/v1/releases/{release.pk}/approve/", {"comment": "lgtm"},
                                           format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    assert response.json()["approvals"][0]["comment"] == "lgtm"


def test_approve__author__403_with_reason(api, users, envs):
    release = make_release(by=users["approver"], envs=[envs["staging"]])
    response = api(users["approver"]).post(f"/api/v1/releases/{release.pk}/approve/", {}, format="json")
    assert response.status_code == 403
    assert "author" in response.json()["detail"]


def test_approve__wrong_state__409(api, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    api(users["approver"]).post(f"/api/v1/releases/{release.pk}/approve/", {}, format="json")
    response = api(users["approver2"]).post(f"/api/v1/releases/{release.pk}/approve/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "transition_not_allowed"


def test_approve__plan_not_ready__409_with_reasons(api, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]], plan={})
    response = api(users["approver"]).post(f"/api/v1/releases/{release.pk}/approve/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["reasons"] == ["the rollback plan is missing: add at least one rollback step"]


def test_create_release__targets_an_environment_the_author_cannot_see__403(api, users, envs):
    response = api(users["dev"]).post("/api/v1/releases/", {
        "type": "minor", "title": "Sneaky", "environments": ["staging", "production"], **PLAN}, format="json")
    assert response.status_code == 403 and "no access to production" in response.json()["detail"]
    assert not Release.objects.filter(title="Sneaky").exists()


@pytest.mark.parametrize("name", ["deploy", "complete", "fail", "rollback"])
def test_release_status__not_set_by_hand__follows_the_deployments(api, users, envs, name):
    """Marking a release deployed (or failed...) by hand would make its status lie: those routes are gone;
    deployments move the release (POST /api/v1/deployments/)."""
    release = make_release(by=users["planner"], envs=[envs["production"]])
    api(users["approver"]).post(f"/api/v1/releases/{release.pk}/approve/", {}, format="json")
    response = api(users["ops"]).post(f"/api/v1/releases/{release.pk}/{name}/", {"reason": "x"}, format="json")
    assert response.status_code == 404
    assert Release.objects.get(pk=release.pk).status == "approved"


def test_reject__no_reason__400(api, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    response = api(users["approver"]).post(f"/api/v1/releases/{release.pk}/reject/", {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()


def test_update__approved_release__409(api, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    api(users["approver"]).post(f"/api/v1/releases/{release.pk}/approve/", {}, format="json")
    response = api(users["dev"]).patch(f"/api/v1/releases/{release.pk}/", {"title": "new"}, format="json")
    assert response.status_code == 409


def test_update__planned__200_audited(api, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]], title="Old")
    response = api(users["dev"]).patch(f"/api/v1/releases/{release.pk}/", {"title": "New"}, format="json")
    assert response.status_code == 200 and response.json()["title"] == "New"
    history = api(users["approver"]).get(f"/api/v1/releases/{release.pk}/history/").json()
    assert [e["action"] for e in history] == ["release.update", "release.create"]


def test_history__without_audit_permission__403_like_the_audit_trail(api, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    assert api(users["dev"]).get("/api/v1/audit-events/").status_code == 403
    response = api(users["dev"]).get(f"/api/v1/releases/{release.pk}/history/")
    assert response.status_code == 403 and "view_auditevent" in response.json()["detail"]


def test_notes__download__markdown_attachment(api, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]], version="3.0.0", type="major")
    response = api(users["dev"]).get(f"/api/v1/releases/{release.pk}/notes/?download=1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert 'filename="release-3.0.0.md"' in response["Content-Disposition"]
    assert response.content.decode().startswith("# Release 3.0.0 - ")


def test_propose_version__bad_type__400_and_good_type__200(api, users, envs):
    make_release(by=users["dev"], envs=[envs["staging"]], version="1.4.2", type="patch")
    assert api(users["dev"]).get("/api/v1/releases/propose-version/?type=x").status_code == 400
    assert api(users["dev"]).get("/api/v1/releases/propose-version/?type=hotfix").json()["version"] == "1.4.3"


def test_environments__developer__sees_no_production(api, users, envs):
    names = [e["name"] for e in api(users["dev"]).get("/api/v1/environments/").json()["results"]]
    assert "production" not in names and "development" in names
    assert api(users["dev"]).get("/api/v1/environments/production/").status_code == 404


def test_environments__update_by_operations__200_by_developer_403(api, users, envs):
    ok = api(users["ops"]).patch("/api/v1/environments/staging/", {"data_retention": "60 days"}, format="json")
    assert ok.status_code == 200 and ok.json()["data_retention"] == "60 days"
    refused = api(users["dev"]).patch("/api/v1/environments/staging/", {"data_retention": "1 day"}, format="json")
    assert refused.status_code == 403


def test_environments__bad_infrastructure__400(api, users, envs):
    response = api(users["ops"]).patch("/api/v1/environments/staging/", {"infrastructure": [1, 2]}, format="json")
    assert response.status_code == 400 and "infrastructure" in response.json()


def test_awaiting_my_approval__lists_release(api, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    body = api(users["approver"]).get("/api/v1/releases/awaiting-my-approval/").json()
    assert [r["id"] for r in body["results"]] == [release.pk] and body["count"] == 1


def test_audit_events__filter_and_csv_export(api, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    client = api(users["ops"])
    listed = client.get(f"/api/v1/audit-events/?object_type=releases.release&object_id={release.pk}").json()
    assert [e["action"] for e in listed["results"]] == ["release.create"]
    csv_response = client.get("/api/v1/audit-events/export/?action=release.")
    body = b"".join(csv_response.streaming_content).decode()
    assert body.splitlines()[0].startswith("id,created_at,actor,action")
    assert "release.create" in body
    assert api(users["dev"]).get("/api/v1/audit-events/").status_code == 403


def test_audit_events__no_write_routes(api, users, envs):
    make_release(by=users["dev"], envs=[envs["staging"]])
    event = AuditEvent.objects.first()
    client = api(users["admin"])
    assert client.delete(f"/api/v1/audit-events/{event.pk}/").status_code == 405
    assert client.patch(f"/api/v1/audit-events/{event.pk}/", {"reason": "x"}, format="json").status_code == 405
    assert client.post("/api/v1/audit-events/", {}, format="json").status_code == 405


def test_token_auth__obtained_token__works(client, users, envs):
    response = client.post("/api/v1/auth/token/", {"username": "dev", "password": "pw-123456789"})
    token = response.json()["token"]
    listed = client.get("/api/v1/releases/", HTTP_AUTHORIZATION=f"Token {token}")
    assert listed.status_code == 200


def test_openapi_schema__served(client, users):
    client.force_login(users["dev"])
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/releases/{id}/approve/" in response.content
    assert client.get("/api/docs/").status_code == 200


def test_list_releases__many__queries_do_not_grow_per_release(api, users, envs, django_assert_max_num_queries):
    for i in range(20):
        make_release(by=users["dev"], envs=[envs["development"], envs["staging"]], version=f"1.{i}.0")
    client = api(users["approver"])
    with django_assert_max_num_queries(15):
        body = client.get("/api/v1/releases/").json()
    assert body["count"] == 20 and "available_transitions" not in body["results"][0]
    detail = client.get(f"/api/v1/releases/{body['results'][0]['id']}/").json()
    assert detail["available_transitions"] == ["approve", "reject"]


# --- releases scoped to who may see them --------------------------------------------------------------------
def test_releases__targeting_only_unseen_environments__hidden_like_deployments(api, users, envs):
    hidden = make_release(by=users["planner"], envs=[envs["production"]], title="Prod only")
    seen = make_release(by=users["planner"], envs=[envs["staging"], envs["production"]], title="Staging too")
    client = api(users["dev"])
    titles = [r["title"] for r in client.get("/api/v1/releases/").json()["results"]]
    assert titles == ["Staging too"]
    for path in ("", "history/", "notes/"):
        assert client.get(f"/api/v1/releases/{hidden.pk}/{path}").status_code == 404
    assert client.get(f"/api/v1/releases/{seen.pk}/").status_code == 200
    assert api(users["approver"]).get(f"/api/v1/releases/{hidden.pk}/history/").status_code == 200


def test_release_and_environments__where_it_runs__version_and_since(api, users, envs):
    from releases.deploy import engine
    from releases.deploy import services as deployments
    from releases.models import DeploymentTarget

    DeploymentTarget.objects.create(environment=envs["development"], backend="simulation")
    release = make_release(by=users["dev"], envs=[envs["development"]])
    api(users["approver"]).post(f"/api/v1/releases/{release.pk}/approve/", {}, format="json")
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["dev"],
                                        dispatch=False)
    engine.run_inline(dep.pk)
    body = api(users["dev"]).get(f"/api/v1/releases/{release.pk}/").json()
    assert body["status"] == "deployed"
    [where] = body["running_in"]
    assert where["environment"] == "development" and where["version"] == release.version
    assert where["deployment"] == dep.pk and where["since"]
    environments = {e["name"]: e for e in api(users["dev"]).get("/api/v1/environments/").json()["results"]}
    assert environments["development"]["current_version"] == release.version
    assert environments["development"]["current_deployment"] == dep.pk
    assert environments["staging"]["current_version"] == ""


def test_create_deployment__unknown_parameter__400_naming_the_known_ones(api, users, envs):
    from releases.models import DeploymentTarget

    DeploymentTarget.objects.create(environment=envs["development"], backend="simulation")
    release = make_release(by=users["dev"], envs=[envs["development"]])
    api(users["approver"]).post(f"/api/v1/releases/{release.pk}/approve/", {}, format="json")
    response = api(users["dev"]).post("/api/v1/deployments/", {
        "release": release.version, "environment": "development", "parameters": {"pasue": 30}}, format="json")
    assert response.status_code == 400
    assert "pasue: unknown parameter (known: steps, pause" in str(response.json()["parameters"])
