"""Operational endpoints and deployment settings."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_healthz__always__200(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz__database_and_broker_up__200(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz__broker_down__503_names_it(client, monkeypatch):
    from pmrelease import views

    def broken():
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(views, "_check_broker", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("error: ConnectionError")


@pytest.mark.django_db
def test_metrics__prometheus_text__release_gauges(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b'pmrelease_releases{status="planned"}' in response.content


def _manage(*args, env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
                                                            "CSRF_COOKIE_SECURE", "SECRET_KEY")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_check_deploy__production_environment__no_warnings(tmp_path):
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env_extra={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "DEBUG": "false",
        "SECRET_KEY": "a-very-long-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "releases.example.com", "VAR_DIR": str(tmp_path),
    })
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings__no_secret_key__refuses_to_start(tmp_path):
    result = _manage("check", env_extra={"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                                         "VAR_DIR": str(tmp_path)})
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_makemigrations__models__no_missing_migration(tmp_path):
    result = _manage("makemigrations", "--check", "--dry-run",
                     env_extra={"VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 60})
    assert result.returncode == 0, result.stdout + result.stderr
