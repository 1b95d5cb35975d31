"""``pmr`` end to end: the console script against a live portal with a real worker — create a release, deploy
with --wait while the gate is reported with `pmr gate report`, exit 0 on success and 1 on a rollback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pmrelease import tokens
from releases.models import Deployment, Release
from tests.integration_support import running_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PMR = str(Path(sys.executable).parent / "pmr")
JUNIT_FAILING = b'<testsuite name="u"><testcase name="a"/><testcase name="b"><failure/></testcase></testsuite>'


@pytest.fixture
def ci(users, envs, sim_targets, seed_gates, live_server, settings):
    settings.DEPLOYMENT_WAIT_POLL_SECONDS = 0.05
    account = tokens.service_account_create(username="ci", roles=["operations"], by=users["admin"])
    key = tokens.create_token(user=account.user, by=users["admin"], name="github actions",
                              scopes=["read", "releases:write", "deployments:write", "gates:report"])[1]
    return {**os.environ, "PMR_URL": live_server.url, "PMR_TOKEN": key}


def pmr(env, *args, timeout=60):
    return subprocess.run([PMR, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd="/")


def test_pmr__create_deploy_wait_report__exit_0_then_rollback_exit_1(ci, users, envs, approved_release, tmp_path):
    created = pmr(ci, "release", "create", "--type", "minor", "--title", "From the pipeline", "--version", "7.0.0",
                  "--env", "development")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "7.0.0" and Release.objects.get(version="7.0.0").title == "From the pipeline"

    report = tmp_path / "junit.xml"
    report.write_bytes(JUNIT_FAILING)
    with running_worker():
        for release, gate_args, expected in [
                (approved_release(version="7.1.0"), ["--passed", "12", "--failed", "0"], 0),
                (approved_release(version="7.2.0"), ["--junit", str(report)], 1)]:
            known = set(Deployment.objects.values_list("pk", flat=True))
            waiting = subprocess.Popen(
                [PMR, "deploy", release.version, "--env", "development", "--strategy", "canary", "--param",
                 "pause=0", "--wait", "--timeout", "2m"], env=ci, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, cwd="/")
            new = Deployment.objects.exclude(pk__in=known)
            assert wait_for(new.exists, timeout=30)
            dep = new.get()
            gate_waits = dep.steps.filter(kind="gates", status="waiting")
            assert wait_for(gate_waits.exists, timeout=30)
            reported = pmr(ci, "gate", "report", str(dep.pk), "unit-tests", *gate_args)
            assert reported.returncode == 0, reported.stderr
            out, err = waiting.communicate(timeout=90)
            assert waiting.returncode == expected, (out, err)
            assert f"deployment {dep.pk}:" in out and "step 1 " in out
            dep.refresh_from_db()
            if expected == 0:
                assert dep.status == "succeeded" and "succeeded" in out
            else:
                assert dep.status == "rolled_back" and "rolled back" in err and "blocking gate failed" in err

    status = pmr(ci, "status", "--env", "development")
    assert status.returncode == 0 and "7.1.0" in status.stdout and "gate unit-tests" in status.stdout
    refused = pmr(ci, "deploy", "no-such-version", "--env", "development")
    assert refused.returncode == 3 and "HTTP 400" in refused.stderr
    assert pmr({**ci, "PMR_TOKEN": ""}, "status").returncode == 2
