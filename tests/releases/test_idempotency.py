"""Idempotency-Key on the API's creating and transitioning POSTs: a retry answers the first response (one
deployment, one release, one gate result), another body with the same key is a 422."""
import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pmrelease import idempotency, tokens
from pmrelease.models import IdempotencyRecord
from releases.models import Deployment, GateResult, Release

pytestmark = pytest.mark.django_db


def client_of(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.issue_token(user=user, by=user)}")
    return client


def test_deployment__same_key_twice__one_deployment_same_answer(users, envs, sim_targets, approved_release):
    release = approved_release()
    client = client_of(users["ops"])
    body = {"release": release.version, "environment": "development", "strategy": "rolling-update"}
    first = client.post("/api/v1/deployments/", body, format="json", HTTP_IDEMPOTENCY_KEY="deploy-42")
    again = client.post("/api/v1/deployments/", body, format="json", HTTP_IDEMPOTENCY_KEY="deploy-42")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Deployment.objects.count() == 1
    # without a key (or with a new one) a POST is a new request
    other = client.post("/api/v1/deployments/", body, format="json", HTTP_IDEMPOTENCY_KEY="deploy-43")
    assert other.status_code in (201, 409) and "Idempotent-Replayed" not in other


def test_same_key_other_body__422_and_nothing_done(users, envs, sim_targets):
    client = client_of(users["planner"])
    body = {"version": "3.0.0", "type": "major", "title": "A", "environments": ["development"]}
    assert client.post("/api/v1/releases/", body, format="json", HTTP_IDEMPOTENCY_KEY="k1").status_code == 201
    changed = client.post("/api/v1/releases/", {**body, "title": "B"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert changed.status_code == 422 and "another request" in changed.json()["detail"]
    assert list(Release.objects.values_list("title", flat=True)) == ["A"]


def test_key_belongs_to_its_sender__another_token_runs_its_own(users, envs, sim_targets):
    body = {"version": "3.0.0", "type": "major", "title": "A", "environments": ["development"]}
    assert client_of(users["planner"]).post("/api/v1/releases/", body, format="json",
                                            HTTP_IDEMPOTENCY_KEY="same").status_code == 201
    second = client_of(users["planner"]).post("/api/v1/releases/", {**body, "version": "4.0.0"}, format="json",
                                              HTTP_IDEMPOTENCY_KEY="same")
    assert second.status_code == 201 and Release.objects.count() == 2


def test_gate_result_and_transition__replayed(users, envs, sim_targets, seed_gates, approved_release):
    from releases.deploy import services as deployments

    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False)
    client = client_of(users["ops"])
    url = f"/api/v1/deployments/{dep.pk}/gates/unit-tests/results/"
    for _ in range(2):
        assert client.post(url, {"passed": 1, "failed": 0}, format="json",
                           HTTP_IDEMPOTENCY_KEY="gate-1").status_code == 201
    assert GateResult.objects.count() == 1
    abort = f"/api/v1/deployments/{dep.pk}/abort/"
    first = client.post(abort, {"reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="abort-1")
    again = client.post(abort, {"reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="abort-1")
    assert first.status_code == again.status_code == 200 and again.json() == first.json()


def test_validation_error__kept_and_replayed(users, envs):
    client = client_of(users["planner"])
    for _ in range(2):
        response = client.post("/api/v1/releases/", {"type": "nope"}, format="json", HTTP_IDEMPOTENCY_KEY="bad")
        assert response.status_code == 400
    assert response["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", "a b", "x" * 256, "é"])
def test_malformed_key__400(users, envs, key):
    response = client_of(users["planner"]).post("/api/v1/releases/", {}, format="json",
                                                HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["detail"]


def test_claim__running_request__409_busy_then_stale_pending_taken_over(db):
    now = timezone.now()
    assert idempotency.claim(owner="o", key="k", request_hash="h", now=now)[0] == "run"
    assert idempotency.claim(owner="o", key="k", request_hash="h", now=now)[0] == "busy"
    later = now + idempotency.PENDING_TTL + dt.timedelta(seconds=1)
    assert idempotency.claim(owner="o", key="k", request_hash="h", now=later)[0] == "run"
    assert idempotency.prune(now=later + idempotency.IDEMPOTENCY_TTL + dt.timedelta(seconds=1)) == 1
    assert not IdempotencyRecord.objects.exists()


def test_body_larger_than_kept__413_saying_so(users, envs, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = client_of(users["planner"]).post("/api/v1/releases/", {"title": "x" * 200}, format="json",
                                                HTTP_IDEMPOTENCY_KEY="big")
    assert response.status_code == 413 and "at most 100 bytes" in response.json()["detail"]
