"""Structured JSON logs (pmrelease.logs): the seed's LogEntry fields, and the request id travelling from a web
request into the Celery task it starts, the task's log lines and the audit rows the task writes."""
import io
import json
import logging

import pytest
import structlog

from pmrelease import logs
from pmrelease.models import AuditEvent
from releases import services
from releases.models import Deployment, DeploymentTarget
from tests.factories import make_release
from tests.integration_support import running_worker, wait_for


class JsonLines:
    """The root logger's records rendered by the portal's JSON formatter, parsed back line by line."""

    def __init__(self):
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logs.formatter("json"))

    def attach(self):
        """(Again: the test worker's thread runs django.setup(), which configures logging anew.)"""
        root = logging.getLogger()
        if self.handler not in root.handlers:
            root.addHandler(self.handler)
        root.setLevel(logging.INFO)

    def __call__(self):
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def json_lines():
    lines = JsonLines()
    old_level = logging.getLogger().level
    lines.attach()
    yield lines
    logging.getLogger().removeHandler(lines.handler)
    logging.getLogger().setLevel(old_level)


def test_json_log__structlog_and_stdlib_calls__carry_the_log_entry_fields(json_lines, settings):
    from pmrelease.middleware import reset_request_id, set_request_id

    token = set_request_id("req-fields-1")
    try:
        structlog.get_logger("pmrelease.test").info("deployment advanced", deployment=12, step="canary")
        logging.getLogger("django.request").warning("slow %s", "answer", extra={"path": "/api/v1/releases/"})
    finally:
        reset_request_id(token)
    first, second = json_lines()[-2:]
    assert set(first) == {"timestamp", "level", "service", "message", "logger", "context", "metadata"}
    assert first["timestamp"].endswith("Z") and first["level"] == "info" and first["service"] == "web"
    assert first["message"] == "deployment advanced" and first["logger"] == "pmrelease.test"
    assert first["context"] == {"user_id": "", "request_id": "req-fields-1", "environment": settings.LOG_ENVIRONMENT,
                                "version": "0.1.0"}
    assert first["metadata"] == {"deployment": 12, "step": "canary"}
    assert second["level"] == "warning" and second["message"] == "slow answer"
    assert second["metadata"] == {"path": "/api/v1/releases/"} and second["context"]["request_id"] == "req-fields-1"


@pytest.mark.parametrize(("argv", "service"), [
    (["celery", "-A", "pmrelease", "worker", "-l", "info"], "worker"),
    ([".venv/bin/celery", "-A", "pmrelease", "beat"], "beat"),
    (["gunicorn", "pmrelease.wsgi:application"], "web"), (["manage.py", "runserver"], "web")])
def test_guess_service__command_line__web_worker_or_beat(argv, service):
    assert logs.guess_service(argv) == service


def test_configure__unknown_format__refused():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.configure(fmt="xml", level="INFO", service="web", environment="x", version="1")


@pytest.mark.django_db
def test_request_id__absent__generated_and_returned__present_kept(client):
    made = client.get("/healthz")["X-Request-ID"]
    assert len(made) == 32 and made != client.get("/healthz")["X-Request-ID"]
    assert client.get("/healthz", HTTP_X_REQUEST_ID="ci-run-77.step-3")["X-Request-ID"] == "ci-run-77.step-3"
    assert len(client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]) == 32


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_request_id__web_request__in_the_worker_task_log_lines_and_its_audit_rows(users, envs, api, json_lines):
    DeploymentTarget.objects.create(environment=envs["development"], backend="simulation")
    release = make_release(by=users["dev"], envs=[envs["development"]])
    services.release_approve(release=release, by=users["approver"])
    with running_worker():
        json_lines.attach()
        response = api(users["ops"]).post(
            "/api/v1/deployments/", {"release": release.version, "environment": "development", "strategy": "canary",
                                     "parameters": {"steps": [50, 100], "pause": 0}},
            format="json", HTTP_X_REQUEST_ID="req-obs-4711")
        assert response.status_code == 201, response.content
        assert response["X-Request-ID"] == "req-obs-4711"
        dep = Deployment.objects.get(pk=response.json()["id"])
        assert wait_for(lambda: Deployment.objects.get(pk=dep.pk).is_finished, timeout=60)
    assert Deployment.objects.get(pk=dep.pk).status == "succeeded"

    task_lines = [line for line in json_lines()
                  if line["metadata"].get("task") == "releases.tasks.advance_deployment"]
    assert task_lines, "no log line of the worker's task"
    for line in task_lines:
        assert line["service"] == "worker"
        assert line["context"]["request_id"] == "req-obs-4711"
        assert line["context"]["user_id"] == str(users["ops"].pk)
    assert "task success" in {line["message"] for line in task_lines}
    # the rows the worker wrote (the deployment's steps and its success) carry the web request's id
    rows = AuditEvent.objects.filter(object_type="releases.deployment", object_id=str(dep.pk), action="deployment.succeed")
    assert rows.exists() and set(rows.values_list("request_id", flat=True)) == {"req-obs-4711"}
