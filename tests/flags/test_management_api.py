"""The flag management API under /api/v1/flags/."""
import pytest

from flags.models import FlagChangeRequest

pytestmark = pytest.mark.django_db


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
