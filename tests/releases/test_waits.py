"""Waiting for a deployment: the long-poll returns on a change and on its timeout (304 with If-None-Match), at
once when terminal; the event stream delivers every step of a deployment run by a real worker, and ends."""
import json
import threading
import time

import pytest
import requests

from pmrelease import tokens
from releases import services
from releases.deploy import services as deployments
from releases.deploy import waits
from releases.models import Deployment, DeploymentTarget
from tests.factories import make_release
from tests.integration_support import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def paused(users, envs):
    """A running canary deployment that stops at its pause step (waiting for a person)."""
    DeploymentTarget.objects.create(environment=envs["development"], backend="simulation")
    release = make_release(by=users["dev"], envs=[envs["development"]])
    services.release_approve(release=release, by=users["approver"])
    return deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                         strategy="canary", parameters={"pause": None}, dispatch=False)


def headers(users, **extra):
    return {"Authorization": f"Bearer {tokens.issue_token(user=users['ops'], by='test')}", **extra}


def test_long_poll__state_changes__answers_at_once_with_new_etag(live_server, users, paused, settings):
    settings.DEPLOYMENT_WAIT_POLL_SECONDS = 0.05
    url = f"{live_server.url}/api/v1/deployments/{paused.pk}/"
    auth = headers(users)
    first = requests.get(url, headers=auth, timeout=5)
    assert first.status_code == 200 and first.headers["ETag"]
    timer = threading.Timer(0.6, lambda: deployments.deployment_action(deployment=paused, name="abort",
                                                                     by=users["ops"], reason="ci", dispatch=False))
    started = time.monotonic()
    timer.start()
    waited = requests.get(url, params={"wait": "20"}, headers={**auth, "If-None-Match": first.headers["ETag"]},
                          timeout=30)
    elapsed = time.monotonic() - started
    timer.join()
    assert waited.status_code == 200 and waited.json()["status"] == "rolling_back"
    assert 0.5 < elapsed < 5 and waited.headers["ETag"] != first.headers["ETag"]


def test_long_poll__nothing_changes__304_after_the_wait(live_server, users, paused):
    url = f"{live_server.url}/api/v1/deployments/{paused.pk}/"
    auth = headers(users)
    etag = requests.get(url, headers=auth, timeout=5).headers["ETag"]
    started = time.monotonic()
    response = requests.get(url, params={"wait": "1"}, headers={**auth, "If-None-Match": etag}, timeout=10)
    assert response.status_code == 304 and 0.9 < time.monotonic() - started < 4
    assert response.headers["ETag"] == etag and response.headers["Retry-After"] == "0"
    # without If-None-Match: 200 with the unchanged body
    plain = requests.get(url, params={"wait": "0.5"}, headers=auth, timeout=10)
    assert plain.status_code == 200 and plain.json()["id"] == paused.pk


def test_long_poll__stale_etag_or_bad_wait_or_no_access__no_waiting(live_server, users, paused):
    url = f"{live_server.url}/api/v1/deployments/{paused.pk}/"
    auth = headers(users)
    started = time.monotonic()
    stale = requests.get(url, params={"wait": "30"}, headers={**auth, "If-None-Match": '"old"'}, timeout=10)
    assert stale.status_code == 200 and time.monotonic() - started < 3
    bad = requests.get(url, params={"wait": "61"}, headers=auth, timeout=5)
    assert bad.status_code == 400 and "wait" in bad.json()
    assert requests.get(url, params={"wait": "5"}, timeout=5).status_code == 401
    assert requests.get(f"{live_server.url}/api/v1/deployments/999999/", params={"wait": "5"}, headers=auth,
                        timeout=5).status_code == 404


def test_event_stream__real_worker__every_step_then_end(live_server, users, envs, settings):
    settings.DEPLOYMENT_WAIT_POLL_SECONDS = 0.05
    DeploymentTarget.objects.create(environment=envs["development"], backend="simulation")
    release = make_release(by=users["dev"], envs=[envs["development"]])
    services.release_approve(release=release, by=users["approver"])
    auth = headers(users)
    events = []
    with running_worker():
        dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                            strategy="canary", parameters={"steps": [20, 100], "pause": 1})
        with requests.get(f"{live_server.url}/api/v1/deployments/{dep.pk}/events/", headers=auth, stream=True,
                          timeout=60) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            name = None
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
    dep = Deployment.objects.get(pk=dep.pk)
    assert dep.status == "succeeded"
    assert events[-1] == ("end", {"status": "succeeded"})
    finished = [(d["step"], d["status"]) for n, d in events if n == "step" and d["status"] == "succeeded"]
    assert finished == [(s.position, "succeeded") for s in dep.steps.order_by("position")]
    logged = [d["msg"] for n, d in events if n == "log"]
    assert logged == [line["msg"] for s in dep.steps.order_by("position") for line in s.log]


def test_step_events__pure__new_lines_and_status_changes_only():
    before = {"status": "running", "waiting_for": "", "failure_reason": "",
              "steps": [{"id": 1, "phase": "deploy", "position": 1, "kind": "canary", "name": "c", "status": "running",
                         "outcome": "", "log": [{"t": "1", "msg": "a"}]}]}
    after = {**before, "status": "succeeded",
             "steps": [{**before["steps"][0], "status": "succeeded", "log": [{"t": "1", "msg": "a"},
                                                                          {"t": "2", "msg": "b"}]}]}
    names = [(n, d.get("msg") or d.get("status")) for n, d in waits.step_events(before, after)]
    assert names == [("step", "succeeded"), ("log", "b"), ("status", "succeeded")]
    assert waits.step_events(after, after) == []
