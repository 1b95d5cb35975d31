"""Service accounts and scoped API tokens against the releases API: each scope allows its own actions and nothing
else; expiry, revocation and environment restriction; audit attribution to the account and the token's name."""
import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pmrelease import errors, tokens
from pmrelease.models import ApiToken, AuditEvent
from releases.models import Deployment, GateResult

pytestmark = pytest.mark.django_db


def bearer(key, scheme="Bearer"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client


def key_for(user, scopes, environments=(), expires_at=None, name="ci"):
    return tokens.create_token(user=user, by=user if not tokens.is_service_account(user) else _admin(),
                               name=name, scopes=list(scopes), environments=list(environments),
                               expires_at=expires_at)[1]


def _admin():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="admin")


def new_release_body(version="2.0.0"):
    return {"version": version, "type": "minor", "title": "From CI", "environments": ["development"]}


def deploy_body(release, env="development"):
    return {"release": release.version, "environment": env, "strategy": "rolling-update"}


def test_scope_read__reads_but_writes_nothing__403_naming_the_scope(users, envs, sim_targets, approved_release):
    client = bearer(key_for(users["ops"], ["read"]))
    assert client.get("/api/v1/releases/").status_code == 200
    refused = client.post("/api/v1/releases/", new_release_body(), format="json")
    assert refused.status_code == 403 and "'releases:write' scope" in refused.json()["detail"]
    assert client.post("/api/v1/deployments/", deploy_body(approved_release()), format="json").status_code == 403
    assert not Deployment.objects.exists()


def test_scope_releases_write__creates_releases_only(users, envs, sim_targets, approved_release):
    client = bearer(key_for(users["planner"], ["releases:write"]))
    assert client.post("/api/v1/releases/", new_release_body(), format="json").status_code == 201
    assert client.get("/api/v1/releases/").status_code == 403  # no read scope
    refused = client.post("/api/v1/deployments/", deploy_body(approved_release()), format="json")
    assert refused.status_code == 403 and "deployments:write" in refused.json()["detail"]


def test_scope_deployments_write__deploys_and_acts_but_reports_no_gate(users, envs, sim_targets, seed_gates,
                                                                     approved_release):
    client = bearer(key_for(users["ops"], ["deployments:write"]))
    created = client.post("/api/v1/deployments/", deploy_body(approved_release()), format="json")
    assert created.status_code == 201, created.content
    dep_id = created.json()["id"]
    refused = client.post(f"/api/v1/deployments/{dep_id}/gates/unit-tests/results/", {"passed": 1, "failed": 0},
                          format="json")
    assert refused.status_code == 403 and "gates:report" in refused.json()["detail"]
    assert client.post("/api/v1/releases/", new_release_body(), format="json").status_code == 403
    assert client.post(f"/api/v1/deployments/{dep_id}/abort/", {"reason": "ci"}, format="json").status_code == 200


def test_scope_gates_report__service_account_without_role_reports_in_its_environments_only(
        users, envs, sim_targets, seed_gates, approved_release):
    from releases.deploy import services as deployments

    account = tokens.service_account_create(username="ci-bot", roles=[], by=users["admin"])
    key = key_for(account.user, ["gates:report"], environments=["development"])
    release = approved_release()
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        dispatch=False)
    client = bearer(key)
    ok = client.post(f"/api/v1/deployments/{dep.pk}/gates/unit-tests/results/", {"passed": 3, "failed": 0},
                     format="json")
    assert ok.status_code == 201, ok.content
    assert GateResult.objects.get().reported_by == account.user
    # nothing else: not even reading the deployment, nor acting on it
    assert client.get(f"/api/v1/deployments/{dep.pk}/").status_code == 403
    assert client.post(f"/api/v1/deployments/{dep.pk}/abort/", {"reason": "x"}, format="json").status_code == 403
    # and not in another environment (its account sees nothing there: 404)
    other = bearer(key_for(account.user, ["gates:report"], environments=["staging"], name="staging"))
    assert other.post(f"/api/v1/deployments/{dep.pk}/gates/unit-tests/results/", {"passed": 3, "failed": 0},
                      format="json").status_code == 404
    # an unrestricted gates:report token grants nothing beyond its account (which has no role)
    unrestricted = bearer(key_for(account.user, ["gates:report"], name="everywhere"))
    assert unrestricted.post(f"/api/v1/deployments/{dep.pk}/gates/unit-tests/results/", {"passed": 3, "failed": 0},
                             format="json").status_code == 404


def test_environment_restriction__deploys_to_its_environment_only(users, envs, sim_targets, approved_release):
    from releases.deploy import services as deployments

    release = approved_release()
    staging_dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                                dispatch=False)
    client = bearer(key_for(users["ops"], ["read", "deployments:write"], environments=["staging"]))
    listed = client.get("/api/v1/deployments/").json()
    assert listed["results"] == []  # development is outside the token
    assert client.get(f"/api/v1/deployments/{staging_dep.pk}/").status_code == 404
    refused = client.post("/api/v1/deployments/", deploy_body(release, "development"), format="json")
    assert refused.status_code in (400, 403) and Deployment.objects.count() == 1
    assert [e["name"] for e in client.get("/api/v1/environments/").json()["results"]] == ["staging"]


def test_expired_token__401_saying_expired(users, envs):
    key = key_for(users["ops"], ["read"], expires_at=timezone.now() + dt.timedelta(minutes=5))
    assert bearer(key).get("/api/v1/releases/").status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = bearer(key).get("/api/v1/releases/")
    assert response.status_code == 401 and "expired at" in response.json()["detail"]


def test_revoked_token__401_saying_revoked_and_audited(users, envs):
    key = key_for(users["ops"], ["read"])
    token = ApiToken.objects.get()
    tokens.revoke_token(token=token, by=users["ops"])
    response = bearer(key, scheme="Token").get("/api/v1/releases/")
    assert response.status_code == 401 and "revoked at" in response.json()["detail"]
    assert AuditEvent.objects.filter(action="apitoken.revoke", actor_username="ops").exists()
    with pytest.raises(errors.TransitionNotAllowed):
        tokens.revoke_token(token=token, by=users["ops"])


def test_audit__action_by_token__attributed_to_account_with_token_name(users, envs, sim_targets):
    key = key_for(users["planner"], ["releases:write"], name="release pipeline")
    assert bearer(key).post("/api/v1/releases/", new_release_body(), format="json").status_code == 201
    event = AuditEvent.objects.get(action="release.create")
    assert event.actor_username == "planner (token release pipeline)" and event.actor_id == users["planner"].pk


def test_bearer_and_token_schemes__both_work__last_used_recorded(users, envs):
    key = key_for(users["ops"], ["read"])
    assert ApiToken.objects.get().last_used_at is None
    assert bearer(key, "Bearer").get("/api/v1/releases/").status_code == 200
    assert bearer(key, "Token").get("/api/v1/releases/").status_code == 200
    assert ApiToken.objects.get().last_used_at is not None
    assert bearer("0" * 40).get("/api/v1/releases/").status_code == 401


def test_tokens_api__issue_shown_once_list_without_key_revoke(api, users, envs):
    client = api(users["ops"])
    issued = client.post("/api/v1/tokens/", {"name": "laptop", "scopes": ["read"], "environments": ["staging"]},
                         format="json")
    assert issued.status_code == 201, issued.content
    body = issued.json()
    assert len(body["key"]) == 40 and body["scopes"] == ["read"] and body["state"] == "active"
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert [t["name"] for t in listed] == ["laptop"] and "key" not in listed[0]
    assert client.post(f"/api/v1/tokens/{body['id']}/revoke/").json()["state"] == "revoked"
    assert bearer(body["key"]).get("/api/v1/releases/").status_code == 401


@pytest.mark.parametrize(("payload", "field"), [
    ({"name": "x", "scopes": ["admin"]}, "scopes"),
    ({"name": "x", "scopes": []}, "scopes"),
    ({"name": "x", "scopes": ["read"], "environments": ["nowhere"]}, "environments"),
    ({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "x", "scopes": ["read"], "account": "admin"}, "detail"),
])
def test_tokens_api__bad_input__4xx_naming_the_field(api, users, envs, payload, field):
    response = api(users["ops"]).post("/api/v1/tokens/", payload, format="json")
    assert response.status_code in (400, 403) and field in response.json(), response.json()
    assert not ApiToken.objects.exists()


def test_token_by_token__a_scoped_token_cannot_issue_tokens(users, envs):
    client = bearer(key_for(users["ops"], ["read", "deployments:write", "releases:write"]))
    assert client.post("/api/v1/tokens/", {"name": "more", "scopes": ["*"]}, format="json").status_code == 403


def test_service_account__no_password_no_admin_login_roles_audited(client, users, envs):
    account = tokens.service_account_create(username="ci-deployer", roles=["operations"], by=users["admin"],
                                            description="GitHub Actions")
    user = account.user
    assert not user.has_usable_password() and not user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == ["operations"]
    assert AuditEvent.objects.filter(action="serviceaccount.create", actor_username="admin").exists()
    assert client.post("/api/v1/auth/token/", {"username": "ci-deployer", "password": ""}).status_code == 400
    with pytest.raises(errors.PermissionDenied):
        tokens.service_account_create(username="x", roles=[], by=users["ops"])
    with pytest.raises(errors.PermissionDenied):  # people issue tokens for themselves only
        tokens.create_token(user=user, by=users["ops"], name="n", scopes=["read"])
    with pytest.raises(errors.ValidationFailed):
        tokens.service_account_create(username="ci-deployer", roles=["nope"], by=users["admin"])
