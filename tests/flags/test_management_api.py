"""The flag management API under /api/v1/flags/."""
import pytest
from django.test import Client

from flags import snapshots
from flags.models import FeatureFlag, FlagChangeRequest, FlagEnvironment, GradualRollout

pytestmark = pytest.mark.django_db


def _state(key, env):
    return FlagEnvironment.objects.select_related("flag", "environment").get(flag__key=key, environment__name=env)


def _ofrep_value(raw, key="f"):
    response = Client().post(f"/ofrep/v1/evaluate/flags/{key}", data='{"context":{"targetingKey":"u"}}',
                             content_type="application/json", HTTP_AUTHORIZATION=raw)
    return response.json().get("value")


def test_flags_api__create_patch_rollout__validated_and_approval_in_production(api, users, envs):
    client = api(users["ops"])
    assert client.post("/api/v1/flags/", {"key": "api-flag", "type": "release"}, format="json").status_code == 201
    bad = client.patch("/api/v1/flags/api-flag/environments/staging/", {"strategies": [{"name": "nope"}]},
                       format="json")
    assert bad.status_code == 400 and "unknown strategy 'nope'" in bad.json()["detail"]
    ok = client.post("/api/v1/flags/api-flag/environments/staging/rollout/", {"percentage": 30}, format="json")
    assert ok.status_code == 200 and ok.json()["enabled"] and ok.json()["strategies"][0]["parameters"]["rollout"] == "30"
    proposed = client.patch("/api/v1/flags/api-flag/environments/production/", {"enabled": True}, format="json")
    assert proposed.status_code == 202 and proposed.json()["status"] == "pending"
    change = FlagChangeRequest.objects.get()
    assert client.post(f"/api/v1/flags/changes/{change.pk}/approve/").status_code == 403
    approved = api(users["admin"]).post(f"/api/v1/flags/changes/{change.pk}/approve/")
    assert approved.status_code == 200 and approved.json()["status"] == "applied"
    evaluated = client.post("/api/v1/flags/api-flag/environments/production/evaluate/",
                            {"context": {"targetingKey": "u1"}}, format="json").json()
    assert evaluated["enabled"] is True and evaluated["reason"] == "STATIC"
    exported = client.get("/api/v1/flags/export/?environment=production").json()
    assert [f["name"] for f in exported["features"]] == ["api-flag"]


def test_flags_api__developer__cannot_touch_production(api, users, envs):
    api(users["ops"]).post("/api/v1/flags/", {"key": "f"}, format="json")
    response = api(users["dev"]).post("/api/v1/flags/f/environments/production/rollout/", {"percentage": 5},
                                      format="json")
    assert response.status_code == 403


def test_flags_api__ramp_start_and_pause__201_then_200_and_409_without_a_ramp(api, users, envs):
    client = api(users["ops"])
    client.post("/api/v1/flags/", {"key": "f"}, format="json")
    missing = client.post("/api/v1/flags/f/environments/staging/ramp/pause/", {}, format="json")
    assert missing.status_code == 409 and "no gradual rollout" in missing.json()["detail"]
    started = client.post("/api/v1/flags/f/environments/staging/ramp/", {"steps": "10, 50@60"}, format="json")
    assert started.status_code == 201 and started.json()["status"] == "running"
    paused = client.post("/api/v1/flags/f/environments/staging/ramp/pause/", {"reason": "r"}, format="json")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    unknown = client.post("/api/v1/flags/f/environments/staging/ramp/stop/", {}, format="json")
    assert unknown.status_code == 400 and "unknown ramp action" in unknown.json()["detail"]


@pytest.mark.parametrize("tags", [5, "abc", {"a": 1}])
def test_flag_create_api__tags_not_a_list__400_and_nothing_created(api, users, envs, tags):
    response = api(users["ops"]).post("/api/v1/flags/", {"key": "x", "tags": tags}, format="json")
    assert response.status_code == 400 and "tags must be a list of strings" in response.json()["detail"]
    assert not FeatureFlag.objects.exists()


def test_flag_api__unknown_or_read_only_fields__400_naming_them(api, users, envs, make_flag):
    make_flag("f")
    response = api(users["ops"]).patch("/api/v1/flags/f/", {"descripton": "typo", "created_at": "x"}, format="json")
    assert response.status_code == 400 and "created_at, descripton" in response.json()["detail"]
    response = api(users["ops"]).post("/api/v1/flags/", {"key": "g", "colour": "red"}, format="json")
    assert response.status_code == 400 and "colour" in response.json()["detail"]
    assert not FeatureFlag.objects.filter(key="g").exists()


def test_flag_api__owner_by_username__set_or_refused(api, users, envs, make_flag):
    make_flag("f")
    assert api(users["ops"]).patch("/api/v1/flags/f/", {"owner": "qa"}, format="json").json()["owner"] == "qa"
    response = api(users["ops"]).patch("/api/v1/flags/f/", {"owner": "nobody"}, format="json")
    assert response.status_code == 400 and "nobody" in response.json()["detail"]


@pytest.mark.parametrize("data", [{"lifecycle": "archived"}, {"parent": "p"}])
def test_flag_update_api__developer_archives_or_reparents_flag_on_in_production__403(api, users, envs, make_flag,
                                                                                     data):
    make_flag("p")
    make_flag("f", enabled={"production": True})
    response = api(users["dev"]).patch("/api/v1/flags/f/", data, format="json")
    assert response.status_code == 403 and "production" in response.json()["detail"]
    flag = FeatureFlag.objects.get(key="f")
    assert flag.lifecycle != "archived" and flag.parent_id is None


@pytest.mark.parametrize("enabled", ["false", "true", 1, None])
def test_state_api__enabled_not_a_boolean__400_and_unchanged(api, users, envs, make_flag, enabled):
    make_flag("f")
    response = api(users["ops"]).patch("/api/v1/flags/f/environments/staging/", {"enabled": enabled}, format="json")
    assert response.status_code == 400 and "enabled must be true or false" in response.json()["detail"]
    assert _state("f", "staging").enabled is False


def test_rollout_api__person_in_production__proposed_as_change_request_202(api, users, envs, make_flag):
    make_flag("f")
    response = api(users["ops"]).post("/api/v1/flags/f/environments/production/rollout/", {"percentage": 100},
                                      format="json")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert not _state("f", "production").enabled
    change = FlagChangeRequest.objects.get()
    assert change.proposed["enabled"] is True and change.proposed["strategies"][0]["parameters"]["rollout"] == "100"


@pytest.mark.parametrize("stickiness", [["x"], {"x": 1}, 123, ""])
def test_ramp_start_api__bad_stickiness__400_and_nothing_saved(api, users, envs, make_flag, make_key, stickiness):
    make_flag("f", enabled={"staging": True})
    raw = make_key("staging")
    before = _state("f", "staging").config()
    assert _ofrep_value(raw) is True
    response = api(users["ops"]).post("/api/v1/flags/f/environments/staging/ramp/",
                                      {"steps": [{"percentage": 10, "minutes": 0}], "stickiness": stickiness},
                                      format="json")
    assert response.status_code == 400 and "stickiness" in response.json()["detail"]
    assert not GradualRollout.objects.exists()
    assert _state("f", "staging").config() == before
    snapshots.reset()
    assert _ofrep_value(raw) is True


@pytest.mark.parametrize("url", ["/api/v1/flags/", "/api/v1/flags/changes/", "/api/v1/flags/export/?environment=staging"])
def test_flags_api__anonymous__401_asking_for_a_token(api, envs, url):
    response = api().get(url)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
