"""The builtin metric provider: ingest over HTTP with an environment API key, aggregates, queries, retention."""
import datetime as dt

import pytest
from django.utils import timezone

from flags import services as flag_services
from monitoring.metrics import services
from monitoring.metrics.builtin import BuiltinProvider
from monitoring.models import MetricBucket
from pmrelease.providers import Request, Scope

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(envs):
    def make(env="production", kind="client"):
        return flag_services.api_key_create(environment=envs[env], kind=kind, by=None)[1]
    return make


def post(client, body, raw=None, **headers):
    if raw:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    return client.post("/api/v1/metrics/", body, content_type="application/json", **headers)


def test_ingest__valid_batch__202_and_aggregated_per_bucket(client, key, envs, settings):
    settings.METRICS_BUILTIN_BUCKET_SECONDS = 60
    at = "2026-12-01T10:00:05Z"
    samples = [{"metric": "error_rate", "value": v, "version": "2.3.0", "track": "canary", "at": at}
               for v in (0.1, 0.3, 0.2)]
    response = post(client, {"samples": samples}, key())
    assert response.status_code == 202 and response.json() == {"accepted": 3}
    assert post(client, {"samples": [{**samples[0], "value": 0.6, "at": "2026-12-01T10:00:50Z"}]},
                key()).status_code == 202
    bucket = MetricBucket.objects.get()
    assert (bucket.environment, bucket.count, bucket.min, bucket.max, bucket.last) == (envs["production"], 4, 0.1,
                                                                                      0.6, 0.6)
    assert bucket.mean == pytest.approx(0.3) and bucket.start == dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("samples", "index"), [
    ([{"metric": "error_rate", "value": 0.1}, {"metric": "error_rate", "value": "high"}], 1),
    ([{"metric": "error rate!", "value": 0.1}], 0),
    ([{"metric": "error_rate", "value": 0.1}, {"metric": "x", "value": 1, "at": "yesterday"}], 1),
    ([{"metric": "error_rate", "value": 0.1, "colour": "red"}], 0),
    ([{"metric": "error_rate", "value": 1, "at": "2099-01-01T00:00:00Z"}], 0),
    (["not an object"], 0),
])
def test_ingest__bad_item__400_naming_its_index_nothing_stored(client, key, samples, index):
    response = post(client, {"samples": samples}, key())
    assert response.status_code == 400 and f"samples[{index}]" in response.json()["detail"]
    assert not MetricBucket.objects.exists()


def test_ingest__oversize_batch__413(client, key, settings):
    settings.METRICS_INGEST_MAX_SAMPLES = 5
    response = post(client, {"samples": [{"metric": "error_rate", "value": 0.1}] * 6}, key())
    assert response.status_code == 413 and "at most 5 samples" in response.json()["detail"]


def test_ingest__keys__missing_unknown_revoked_401_frontend_or_other_environment_403(client, key, envs):
    body = {"samples": [{"metric": "error_rate", "value": 0.1}]}
    assert post(client, body).status_code == 401
    assert post(client, body, "pmf.production.client.nope").status_code == 401
    assert post(client, body, key(kind="frontend")).status_code == 403
    response = post(client, {**body, "environment": "staging"}, key("production"))
    assert response.status_code == 403 and "belongs to production" in response.json()["detail"]
    raw = key()
    from flags.models import ApiKey

    flag_services.api_key_revoke(key=ApiKey.objects.get(key_hash=ApiKey.hash(raw)), by=None)
    from flags import snapshots

    snapshots.reset()
    assert post(client, body, raw).status_code == 401
    assert post(client, body, key(kind="admin")).status_code == 202


def test_builtin_provider__one_query_for_many_requests__series_per_version(envs, settings, django_assert_num_queries):
    settings.METRICS_BUILTIN_BUCKET_SECONDS = 1
    now = timezone.now()
    samples = [{"metric": "error_rate", "value": 0.01 * i, "version": v, "at": (now - dt.timedelta(seconds=10 - i))
                .isoformat()} for i in range(10) for v in ("2.0.0", "2.1.0")]
    services.ingest(environment_id=envs["production"].pk, samples=samples)
    provider = BuiltinProvider(environment_id=envs["production"].pk)
    t = now.timestamp()
    requests = [Request("error_rate", Scope("production", (v,)), t - 20, t, 1) for v in ("2.0.0", "2.1.0")]
    requests.append(Request("unknown_metric", Scope("production", ("2.0.0",)), t - 20, t, 1))
    with django_assert_num_queries(1):
        results = provider.fetch(requests)
    assert [round(v, 2) for _, v in results[requests[0]].for_version("2.0.0")] == [0.01 * i for i in range(10)]
    assert len(results[requests[1]].for_version("2.1.0")) == 10
    assert "not a builtin metric" in results[requests[2]].error and "error_rate" in results[requests[2]].error


def test_prune__older_than_the_retention__deleted(envs, settings):
    settings.METRICS_RETENTION_DAYS = 14
    now = timezone.now()
    for days in (15, 13):
        MetricBucket.objects.create(environment=envs["production"], metric="error_rate", version="1",
                                    start=now - dt.timedelta(days=days), count=1, sum=0.1, last_at=now)
    assert services.prune(now) == 1
    assert MetricBucket.objects.get().start > now - dt.timedelta(days=14)


def test_config_save__prometheus_without_url_or_bad_template__400_naming_fields(users, envs):
    from pmrelease import errors

    with pytest.raises(errors.ValidationFailed) as exc:
        services.config_save(environment=envs["production"], by=users["ops"],
                             data={"kind": "prometheus", "templates": {"x": "rate(foo[1m])"}})
    assert set(exc.value.field_errors) == {"url", "templates"}
    with pytest.raises(errors.PermissionDenied):
        services.config_save(environment=envs["production"], by=users["dev"], data={"kind": "builtin"})
    config = services.config_save(environment=envs["production"], by=users["ops"],
                                  data={"kind": "prometheus", "url": "http://prometheus:9090", "auth_env": "PROM_AUTH"})
    assert config.kind == "prometheus" and services.provider_for(envs["production"]).known_metrics() == [
        "error_rate", "response_time_p95"]
