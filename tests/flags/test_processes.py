"""Changes made in one process reach every other within 2 s, in the embedded mode (SQLite, no Redis: versions
published in a file under VAR_DIR) and on PostgreSQL + Redis alike: the portal under gunicorn with two workers,
an edit through its API (one worker makes it, both must serve it), ``import_flags``, a ramp step made by the beat
task in a worker process, and a key revoked from a management command."""
import json
import time

import pytest

from flags import services
from flags.models import ApiKey, FeatureFlag
from pmrelease.tokens import issue_token
from tests.flags.processes import Gunicorn, process_env, request, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.timeout(180)]

# Enough requests that both sync workers answer some of them (each takes connections as they come).
PROBES = 24


def _evaluate(portal, key, flag, user="u-1"):
    return request(f"{portal.url}/ofrep/v1/evaluate/flags/{flag}", method="POST",
                   body={"context": {"targetingKey": user}}, headers={"Authorization": f"Bearer {key}"})


def _seen_everywhere(portal, key, flag, expect):
    """Every one of PROBES requests (spread over both workers) answers as ``expect(status, body)`` wants."""
    return all(expect(*_evaluate(portal, key, flag)[:2]) for _ in range(PROBES))


def _within_two_seconds(portal, key, flag, expect, started):
    deadline = started + 2.0
    while not _seen_everywhere(portal, key, flag, expect):
        assert time.monotonic() < deadline, f"{flag}: not seen by every worker within 2 s"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
def portal(envs, tmp_path):
    server = Gunicorn("pmrelease.wsgi:application", process_env(FLAGS_VERSION_CHECK_SECONDS=1), workers=2,
                      log_dir=tmp_path)
    yield server
    server.stop()


def test_changes_in_other_processes__edit_import_ramp_step_revocation__every_worker_within_two_seconds(
        portal, make_flag, envs, users, tmp_path):
    make_flag("edited", enabled={"staging": False})
    make_flag("imported", enabled={"staging": False})
    ramped = make_flag("ramped", enabled={"staging": False})
    services.ramp_start(state=services.state_for(ramped, envs["staging"]), steps="0, 100@60")
    key, raw = services.api_key_create(environment=envs["staging"], kind="client")
    token = issue_token(user=users["admin"], by=users["admin"])
    for flag in ("edited", "imported", "ramped"):  # both workers hold the environment's snapshot
        assert _seen_everywhere(portal, raw, flag, lambda status, body: status == 200 and (
            body.get("reason") == "DISABLED" or body.get("value") is False))
    on = lambda status, body: status == 200 and body.get("value") is True  # noqa: E731
    timings = {}

    # an edit through the portal's API: made by one gunicorn worker, served by both
    started = time.monotonic()
    status, _body, _ = request(f"{portal.url}/api/v1/flags/edited/environments/staging/", method="PATCH",
                               body={"enabled": True}, headers={"Authorization": f"Token {token}"})
    assert status == 200
    timings["edit"] = _within_two_seconds(portal, raw, "edited", on, started)

    # an import by the management command, a process of its own
    doc = tmp_path / "import.json"
    doc.write_text(json.dumps({"version": 2, "features": [
        {"name": "imported", "enabled": True, "strategies": [{"name": "default", "parameters": {}}]}]}))
    run(["manage.py", "import_flags", "--environment", "staging", str(doc)])
    timings["import"] = _within_two_seconds(portal, raw, "imported", on, time.monotonic())

    # a ramp step by beat's task, run in a worker process of its own
    services.GradualRollout.objects.filter(state__flag=ramped).update(next_step_at="2000-01-01T00:00:00Z")
    run(["-c", "import django; django.setup(); from flags import tasks; assert tasks.advance_ramps() == 1"])
    timings["ramp step"] = _within_two_seconds(portal, raw, "ramped", on, time.monotonic())

    # a key revoked from another process
    run(["manage.py", "shell", "-c", f"from flags import services; from flags.models import ApiKey; "
                                     f"services.api_key_revoke(key=ApiKey.objects.get(pk={key.pk}))"])
    timings["revocation"] = _within_two_seconds(portal, raw, "edited", lambda status, body: status == 401,
                                                time.monotonic())
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert FeatureFlag.objects.get(key="imported").unleash["keys"] == ["name", "enabled", "strategies"]
    print("seen by both workers after:", {k: f"{v:.2f} s" for k, v in timings.items()})
