"""Metric providers per environment: configuration, the builtin store's ingest and retention, test queries."""
import datetime as dt
import math
import re
import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from pmrelease import errors
from pmrelease.providers import Request, Scope
from pmrelease.roles import Capability
from pmrelease.services import model_create, model_delete, model_update
from releases import access

from .builtin import BuiltinProvider, bucket_seconds
from .models import MetricBucket, MetricsConfig, ProviderKind
from .prometheus import PrometheusProvider, template_problems

CONFIG_FIELDS = ["kind", "url", "timeout", "verify_tls", "auth_env", "app", "rate_window", "templates"]
METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_:.]{0,99}")


class PayloadTooLarge(errors.DomainError):
    status_code = 413
    code = "too_large"


# --- providers ------------------------------------------------------------------------------------------
def provider_for(environment):
    """The provider configured for ``environment`` (the builtin store when nothing is configured)."""
    config = MetricsConfig.objects.filter(environment_id=environment.pk).first()
    if config is None or config.kind == ProviderKind.BUILTIN:
        extra = [name for name in (config.templates if config else {}) if isinstance(name, str)]
        return BuiltinProvider(environment_id=environment.pk, metrics=extra)
    return PrometheusProvider(
        url=config.url, environment=environment.name, app=config.app or settings.METRICS_APP,
        window=config.rate_window or settings.METRICS_RATE_WINDOW, timeout=config.timeout,
        verify_tls=config.verify_tls, auth_env=config.auth_env, templates=config.templates)


def _health_key(environment_id):
    return f"readyz:metric-provider:{environment_id}"


def _forget_health(environment):
    """A new configuration is asked afresh by the next /readyz (after the change commits)."""
    from django.core.cache import cache

    transaction.on_commit(lambda: cache.delete(_health_key(environment.pk)))


def provider_problems():
    """/readyz's check (pmrelease.views.degraded_checks): each active environment's provider asked whether it
    answers, at most every READYZ_PROVIDER_CACHE_SECONDS per environment (a probe must stay cheap); the
    reasons of those that do not."""
    from django.core.cache import cache

    from releases.models import Environment

    reasons = []
    for environment in Environment.objects.filter(is_active=True).order_by("position", "name"):
        key = _health_key(environment.pk)
        reason = cache.get(key)
        if reason is None:
            try:
                reason = provider_for(environment).health(settings.READYZ_PROVIDER_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - a provider that cannot even be built is a reason too
                reason = f"the provider cannot be used: {exc.__class__.__name__}: {exc}"[:300]
            cache.set(key, reason, settings.READYZ_PROVIDER_CACHE_SECONDS)
        if reason:
            reasons.append(f"metric provider of {environment.name}: {reason}")
    return reasons


def config_problems(data):
    problems = {}
    if data.get("kind") == ProviderKind.PROMETHEUS and not data.get("url"):
        problems["url"] = ["a Prometheus provider needs its base URL"]
    elif data.get("url") and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[^\s]*)?", data["url"]):
        problems["url"] = ["an http:// or https:// URL, e.g. http://prometheus:9090"]
    found = template_problems(data.get("templates") or {}) if data.get("kind") == ProviderKind.PROMETHEUS else []
    if data.get("kind") != ProviderKind.PROMETHEUS:
        found = [f"{n!r}: a metric name is letters, digits, '_', ':' or '.'"
                 for n in (data.get("templates") or {}) if not METRIC_NAME.fullmatch(str(n))]
    if found:
        problems["templates"] = found
    if data.get("rate_window") and not re.fullmatch(r"[0-9]+(ms|s|m|h)", data["rate_window"]):
        problems["rate_window"] = ["a Prometheus duration such as 30s or 1m"]
    if data.get("auth_env") and not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,99}", data["auth_env"]):
        problems["auth_env"] = ["the name of an environment variable (capitals, digits, _)"]
    return problems


def config_save(*, environment, data, by):
    """Set where ``environment``'s metrics come from (administrative access to it)."""
    access.require(by, [environment], Capability.CONFIGURE)
    current = MetricsConfig.objects.filter(environment=environment).first()
    merged = {name: getattr(current, name) for name in CONFIG_FIELDS} if current else {}
    problems = config_problems({**merged, **data})
    if problems:
        raise errors.ValidationFailed("invalid metrics configuration", field_errors=problems)
    with transaction.atomic():
        _forget_health(environment)
        if current is None:
            return model_create(model=MetricsConfig, data=data, fields=CONFIG_FIELDS, by=by,
                                extra={"environment": environment}, action="environment.metrics",
                                audit_obj=environment)
        locked = MetricsConfig.objects.select_for_update().get(pk=current.pk)
        return model_update(instance=locked, data=data, fields=CONFIG_FIELDS, by=by, action="environment.metrics",
                            audit_obj=environment)[0]


def config_reset(*, environment, by):
    """Back to the builtin store (the configuration row removed, audited)."""
    access.require(by, [environment], Capability.CONFIGURE)
    with transaction.atomic():
        _forget_health(environment)
        config = MetricsConfig.objects.select_for_update().filter(environment=environment).first()
        if config is not None:
            model_delete(instance=config, by=by, fields=CONFIG_FIELDS, audit_obj=environment,
                         action="environment.metrics.delete")


def test_queries(*, environment, by, now=None):
    """Each named metric queried once over the last five minutes for the version the environment runs:
    [(metric, value or None, error or "")], for the environment page's "test query" button."""
    access.require(by, [environment], Capability.VIEW)
    provider = provider_for(environment)
    now = now or time.time()
    version = environment.current_version or "(none)"
    requests_ = [Request(metric, Scope(environment.name, (version,)), now - 300, now, 15)
                 for metric in provider.known_metrics()]
    rows = []
    for request, result in provider.fetch(requests_).items():
        points = result.for_version(version)
        rows.append((request.metric, points[-1][1] if points else None,
                     result.error or ("" if points else f"no data for version {version} in the last 5 minutes")))
    return sorted(rows)


# --- the builtin store: ingest and retention ------------------------------------------------------------------
def _sample_problems(index, item, now):
    if not isinstance(item, dict):
        return f"samples[{index}]: an object with metric, value, version, track, flag, at"
    unknown = set(item) - {"metric", "value", "version", "track", "flag", "at"}
    if unknown:
        return f"samples[{index}]: unknown fields {', '.join(sorted(unknown))}"
    if not isinstance(item.get("metric"), str) or not METRIC_NAME.fullmatch(item["metric"]):
        return f"samples[{index}].metric: a metric name (letters, digits, '_', ':' or '.')"
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"samples[{index}].value: a finite number"
    for name, limit in (("version", 64), ("track", 20), ("flag", 100)):
        if not isinstance(item.get(name, ""), str) or len(item.get(name, "")) > limit:
            return f"samples[{index}].{name}: a string of at most {limit} characters"
    at = item.get("at")
    if at is not None:
        try:
            moment = dt.datetime.fromisoformat(str(at).replace("Z", "+00:00"))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        except ValueError:
            return f"samples[{index}].at: an ISO 8601 date-time"
        if moment > now + dt.timedelta(minutes=5) or moment < now - dt.timedelta(days=settings.METRICS_RETENTION_DAYS):
            return f"samples[{index}].at: within the retention ({settings.METRICS_RETENTION_DAYS} days) and not " \
                   "in the future"
        item["at"] = moment
    return None


def ingest(*, environment_id, samples, now=None):
    """Validate and store a batch of pushed samples (all or nothing). Returns the number stored."""
    now = now or timezone.now()
    if not isinstance(samples, list):
        raise errors.ValidationFailed('the body must be {"samples": [...]}', field_errors={
            "samples": ["a list of {metric, value, version, track, at}"]})
    if len(samples) > settings.METRICS_INGEST_MAX_SAMPLES:
        raise PayloadTooLarge(f"at most {settings.METRICS_INGEST_MAX_SAMPLES} samples per request, not "
                              f"{len(samples)}: send them in smaller batches")
    samples = [dict(s) if isinstance(s, dict) else s for s in samples]
    for index, item in enumerate(samples):
        problem = _sample_problems(index, item, now)
        if problem:
            raise errors.ValidationFailed(problem, field_errors={f"samples[{index}]": [problem]})
    size = bucket_seconds()
    buckets = {}
    for item in samples:
        at = item.get("at") or now
        start = dt.datetime.fromtimestamp(at.timestamp() - at.timestamp() % size, tz=dt.UTC)
        key = (item["metric"], item.get("version", ""), item.get("track", ""), item.get("flag", ""), start)
        agg = buckets.setdefault(key, {"count": 0, "sum": 0.0, "min": math.inf, "max": -math.inf,
                                       "last": None, "last_at": None})
        value = float(item["value"])
        agg["count"] += 1
        agg["sum"] += value
        agg["min"], agg["max"] = min(agg["min"], value), max(agg["max"], value)
        if agg["last_at"] is None or at >= agg["last_at"]:
            agg["last"], agg["last_at"] = value, at
    with transaction.atomic():
        for (metric, version, track, flag, start), agg in sorted(buckets.items(), key=lambda kv: kv[0][4]):
            _add(environment_id, metric, version, track, flag, start, agg)
    return len(samples)


def _add(environment_id, metric, version, track, flag, start, agg):
    key = {"environment_id": environment_id, "metric": metric, "version": version, "track": track, "flag": flag,
           "start": start}
    try:
        with transaction.atomic():
            MetricBucket.objects.create(**key, **agg)
            return
    except IntegrityError:
        pass  # the bucket exists: add to it
    MetricBucket.objects.filter(**key).update(
        count=F("count") + agg["count"], sum=F("sum") + agg["sum"], min=Least(F("min"), Value(agg["min"])),
        max=Greatest(F("max"), Value(agg["max"])),
        last=Case(When(last_at__lte=agg["last_at"], then=Value(agg["last"])), default=F("last")),
        last_at=Greatest(F("last_at"), Value(agg["last_at"])))


def prune(now=None):
    """Delete buckets older than the retention (beat). Returns how many."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.METRICS_RETENTION_DAYS)
    deleted, _ = MetricBucket.objects.filter(start__lt=cutoff).delete()
    return deleted
