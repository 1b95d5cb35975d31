"""/readyz and the environments' metric providers: degraded (200) when one fails, 503 only for the database or
the broker."""
import pytest
from django.core.cache import cache

from monitoring.metrics import services as metric_services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def configure(envs, users, name, url, capture):
    with capture(execute=True):
        metric_services.config_save(environment=envs[name], by=users["admin"],
                                    data={"kind": "prometheus", "url": url, "timeout": 0.5})


def test_readyz__every_provider_answers__ready(client, envs, users, httpserver,
                                                django_capture_on_commit_callbacks):
    httpserver.expect_request("/api/v1/query", query_string={"query": "vector(1)"}).respond_with_json(
        {"status": "success", "data": {"resultType": "vector", "result": []}})
    configure(envs, users, "production", httpserver.url_for("/"), django_capture_on_commit_callbacks)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}
    assert len(httpserver.log) == 1  # the builtin providers of the other environments ask nobody


def test_readyz__a_provider_down__200_degraded_naming_it(client, envs, users, django_capture_on_commit_callbacks):
    configure(envs, users, "production", "http://127.0.0.1:9", django_capture_on_commit_callbacks)
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["checks"]["metric_providers"] == "degraded"
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"] == "ok"
    (reason,) = body["reasons"]
    assert reason.startswith("metric provider of production: Prometheus at http://127.0.0.1:9 did not answer")


def test_readyz__a_provider_answering_an_error__degraded(client, envs, users, httpserver,
                                                         django_capture_on_commit_callbacks):
    httpserver.expect_request("/api/v1/query").respond_with_json({"status": "error", "error": "nope"}, status=503)
    configure(envs, users, "staging", httpserver.url_for("/"), django_capture_on_commit_callbacks)
    body = client.get("/readyz").json()
    assert body["status"] == "degraded"
    assert body["reasons"] == [f"metric provider of staging: Prometheus at {httpserver.url_for('/').rstrip('/')} "
                               "answered 503, not a query result"]


def test_readyz__provider_down_and_database_down__503(client, envs, users, monkeypatch,
                                                      django_capture_on_commit_callbacks):
    from pmrelease import views

    configure(envs, users, "production", "http://127.0.0.1:9", django_capture_on_commit_callbacks)

    def broken():
        raise ConnectionError("database away")

    monkeypatch.setattr(views, "_check_database", broken)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["status"] == "not ready"


def test_readyz__answers_kept_a_while__a_new_configuration_asked_afresh(client, envs, users, httpserver,
                                                                        django_capture_on_commit_callbacks):
    httpserver.expect_request("/api/v1/query").respond_with_json({"status": "success", "data": {}})
    configure(envs, users, "production", "http://127.0.0.1:9", django_capture_on_commit_callbacks)
    assert client.get("/readyz").json()["status"] == "degraded"
    assert client.get("/readyz").json()["status"] == "degraded"  # kept: not asked again
    configure(envs, users, "production", httpserver.url_for("/"), django_capture_on_commit_callbacks)
    assert client.get("/readyz").json()["status"] == "ready"
    client.get("/readyz")
    assert len(httpserver.log) == 1
