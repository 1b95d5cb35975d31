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
def test_metrics__prometheus_text__release_gauges(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b'pmrelease_releases{status="planned"}' in response.content


@pytest.mark.django_db
def test_metrics__address_outside_allowed_networks_no_token__403(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 403 and b"pmrelease_releases" not in response.content


@pytest.mark.django_db
def test_metrics__allowed_network__200(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "2001:db8::/32"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::5").status_code == 200


@pytest.mark.django_db
def test_metrics__token__bearer_right_200_wrong_401_challenge(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.METRICS_TOKEN = "scrape-secret-123"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-123").status_code == 200
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics").status_code == 403


def test_metrics_default__embedded_loopback_production_nothing(tmp_path):
    """The embedded mode lets `make run` users curl it locally; production allows nothing until configured."""
    clean = _env_without("DATABASE_URL", "REDIS_URL", "METRICS_ALLOWED_NETWORKS")
    code = "from django.conf import settings; print(settings.METRICS_ALLOWED_NETWORKS)"
    embedded = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT,
                              env={**clean, "VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "pmrelease.settings"},
                              capture_output=True, text=True, timeout=60)
    assert "127.0.0.0/8" in embedded.stdout, embedded.stderr
    production = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT,
                                env={**clean, "VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 60,
                                     "DATABASE_URL": f"sqlite:///{tmp_path / 'p.sqlite3'}",
                                     "DJANGO_SETTINGS_MODULE": "pmrelease.settings"},
                                capture_output=True, text=True, timeout=60)
    assert production.stdout.strip() == "[]", production.stderr


_DEV_SETTINGS = ("DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECRET_KEY")


def _env_without(*names):
    return {k: v for k, v in os.environ.items() if k not in (*_DEV_SETTINGS, *names)}


def _manage(*args, env_extra):
    env = _env_without()
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
