"""Step-up: each action that changes production needs a recent second factor; the same action in development
does not (the action then goes on to its own checks)."""
import pytest
from django.contrib.auth.models import Group
from django.db import transaction

from changes import services as changes
from flags import services as flags
from flags.models import FlagEnvironment
from pmrelease import errors, tokens
from pmrelease.identity import rolemap, stepup
from pmrelease.models import ApiToken
from releases import environments
from releases.deploy import services as deploy
from releases.models import Deployment, TestingGate
from tests.factories import make_release

from .support import session_of

pytestmark = pytest.mark.django_db


def _outcome(call):
    """'step_up' when refused for want of a second factor, else 'ok' or the other error's class name."""
    try:
        call()
    except stepup.StepUpRequired:
        return "step_up"
    except Exception as exc:  # noqa: BLE001 -- the action's own checks after the step-up: not what is tested
        return type(exc).__name__
    return "ok"


def _actions(users, envs):
    """(name, who, call(env)) for every production action the issue lists."""
    admin, approver, ops = users["admin"], users["approver"], users["ops"]

    def approve_release(env):
        release = make_release(by=users["planner"], envs=[env])
        return lambda: __import__("releases.services", fromlist=["x"]).release_approve(release=release, by=approver)

    def approve_change(env):
        change = changes.change_create(by=ops, links=[], data={
            "title": "Rotate certificates", "environments": [env], "implementation_plan": "rotate",
            "rollback_plan": "restore", "testing_plan": "curl"})
        changes.change_submit(change=change, by=ops)
        return lambda: changes.change_approve(change=change, by=admin)

    def start(env):
        release = make_release(by=users["planner"], envs=[env])
        return lambda: deploy.deployment_create(release=release, environment=env, by=admin, dispatch=False)

    def promote(env):
        return lambda: deploy.deployment_action(deployment=Deployment(environment=env), name="promote", by=admin,
                                                dispatch=False)

    def override(env):
        return lambda: deploy.gate_override(deployment=Deployment(environment=env), gate=TestingGate(name="smoke"),
                                            by=admin, reason="flaky", dispatch=False)

    def flag(env):
        created = flags.flag_create(key=f"f-{env.name}", by=admin)
        state = FlagEnvironment.objects.get(flag=created, environment=env)
        return lambda: flags.flag_toggle(state=state, enabled=True, by=ops if env.name == "development" else admin)

    def configure(env):
        return lambda: environments.environment_update(environment=env, data={"purpose": "changed"}, by=admin)

    return [("approve a release", approve_release), ("approve a change", approve_change),
            ("start a deployment", start), ("promote a deployment", promote), ("override a gate", override),
            ("change a flag", flag), ("change configuration", configure)]


ACTIONS = ["approve a release", "approve a change", "start a deployment", "promote a deployment",
           "override a gate", "change a flag", "change configuration"]


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("env_name", ["production", "dr"])
def test_production_action__session_without_second_factor__step_up_required(users, envs, action, env_name):
    build = dict(_actions(users, envs))[action]
    call = build(envs[env_name])
    who = users["approver"] if action == "approve a release" else users["admin"]
    with session_of(who):
        assert _outcome(call) == "step_up"
    with session_of(who, stepped_up=True):
        assert _outcome(call) != "step_up"


@pytest.mark.parametrize("action", ACTIONS)
def test_same_action__development__no_step_up(users, envs, action):
    build = dict(_actions(users, envs))[action]
    call = build(envs["development"])
    who = {"approve a release": users["approver"], "change a flag": users["ops"]}.get(action, users["admin"])
    with session_of(who):
        assert _outcome(call) != "step_up"


def test_second_factor__older_than_max_age__step_up_required_again(users, envs, settings):
    settings.STEP_UP_MAX_AGE = 60
    env = envs["production"]
    with session_of(users["admin"], stepped_up=True) as request:
        request.session[stepup.SESSION_KEY] -= 61
        assert _outcome(lambda: environments.environment_update(environment=env, data={"purpose": "x"},
                                                                by=users["admin"])) == "step_up"


def test_tokens_and_role_mappings__need_step_up(users, groups):
    admin = users["admin"]
    with session_of(admin):
        with pytest.raises(stepup.StepUpRequired):
            tokens.issue_token(user=admin, by=admin, name="ci")
        with pytest.raises(stepup.StepUpRequired):
            rolemap.mapping_save(by=admin, source="oidc", group_name="portal-ops", role="operations")
    with session_of(admin, stepped_up=True):
        tokens.issue_token(user=admin, by=admin, name="ci")
        rolemap.mapping_save(by=admin, source="oidc", group_name="portal-ops", role="operations")
    assert ApiToken.objects.get(name="ci").created_in_step_up is True


def test_api__production_action_without_second_factor__401_step_up_required(client, users, envs):
    client.force_login(users["admin"])
    response = client.patch(f"/api/v1/environments/{envs['production'].name}/", {"purpose": "changed"},
                            content_type="application/json")
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "step_up_required"
    assert response.json()["step_up_url"] == "/account/step-up/"
    assert "second factor" in response.json()["detail"]
    ok = client.patch(f"/api/v1/environments/{envs['development'].name}/", {"purpose": "changed"},
                      content_type="application/json")
    assert ok.status_code == 200, ok.content


def test_api__person_token__only_one_created_in_step_up_may(client, users, envs):
    admin = users["admin"]
    plain = tokens.issue_token(user=admin, by=admin, name="plain")  # no request: no step-up session
    with session_of(admin, stepped_up=True):
        strong = tokens.issue_token(user=admin, by=admin, name="strong")
    url = f"/api/v1/environments/{envs['production'].name}/"
    refused = client.patch(url, {"purpose": "a"}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {plain}")
    assert refused.status_code == 401 and refused.json()["code"] == "step_up_required"
    assert "API token" in refused.json()["detail"]
    allowed = client.patch(url, {"purpose": "b"}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {strong}")
    assert allowed.status_code == 200, allowed.content


def test_mapped_role__manual_membership_edit__refused_naming_source(users, groups):
    rolemap.mapping_save(by=users["admin"], source="ldap", group_name="cn=ops,ou=groups,dc=pm", role="operations")
    with pytest.raises(errors.ValidationFailed) as refused, transaction.atomic():
        users["dev"].groups.add(Group.objects.get(name="operations"))
    assert "ldap" in str(refused.value) and "operations" in str(refused.value)
    users["dev"].groups.add(Group.objects.get(name="qa"))  # an unmapped role is still edited by hand


def test_evidence__never_outlives_its_request(client, users, envs):
    from rest_framework.test import APIRequestFactory

    key = tokens.issue_token(user=users["admin"], by=users["admin"])
    drf_request = __import__("rest_framework.request", fromlist=["Request"]).Request(
        APIRequestFactory().get("/api/v1/environments/", HTTP_AUTHORIZATION=f"Token {key}"))
    assert tokens.TokenAuthentication().authenticate(drf_request)[0] == users["admin"]
    assert stepup.current() is None  # outside a request: no evidence left behind
    client.patch(f"/api/v1/environments/{envs['production'].name}/", {"purpose": "a"},
                 content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}")
    assert stepup.current() is None
