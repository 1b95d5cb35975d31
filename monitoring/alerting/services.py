"""Alert rules: editing (validated, audited), the "test" query, beat's evaluation, the shipped defaults and the
Prometheus rules-file export.

Evaluation: each enabled rule's condition is an instant query against its environment's metric provider
(``pmrelease.providers.provider_for``, the same providers the rollback triggers use). A non-empty result
matches; ``pmrelease.rules.alert_step`` decides the next state (held for ``for_seconds``, firing, resolved)
and whether a notification goes out within the cooldown. The query runs outside any transaction; the state
change is applied under the rule's row lock, so overlapping beat runs change it once.
"""
import math
import re

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pmrelease import audit, delivery, errors, providers, rules
from pmrelease.models import Channel
from pmrelease.roles import Capability
from pmrelease.services import model_create, model_delete, model_update
from releases import access

from . import promql
from .models import AlertEvent, AlertRule

RULE_FIELDS = ["name", "description", "condition", "for_seconds", "severity", "channels", "cooldown", "enabled"]
MAX_SERIES_KEPT = 20

# The seed's two rules, shipped for production. The seed's first condition has a stray ")" (promql-parser:
# "unexpected right parenthesis ')'"); it ships without it.
DEFAULT_RULES = [
    {"name": "High Error Rate", "description": "API error rate above 5%",
     "condition": 'rate(http_requests_total{status=~"5.."}[5m]) > 0.05', "severity": "critical",
     "channels": ["slack", "email", "sms"], "cooldown": 5, "enabled": True},
    {"name": "Slow Response Time", "description": "95th percentile response time above 2 seconds",
     "condition": "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])) > 2",
     "severity": "warning", "channels": ["slack"], "cooldown": 15, "enabled": True},
]


# --- editing --------------------------------------------------------------------------------------------------
def _problems(data):
    found = {}
    if "condition" in data:
        messages = promql.problems(data["condition"])
        if messages:
            found["condition"] = messages
    if "cooldown" in data and (not isinstance(data["cooldown"], int) or not 0 <= data["cooldown"] <= 7 * 24 * 60):
        found["cooldown"] = ["minutes from 0 to 10080 (a week)"]
    if "for_seconds" in data and (not isinstance(data["for_seconds"], int)
                                  or not 0 <= data["for_seconds"] <= 7 * 86400):
        found["for_seconds"] = ["seconds from 0 to 604800 (a week)"]
    return found


def rule_save(*, environment, data, by, rule=None):
    """Create or change an alert rule of ``environment`` (administrative access to it)."""
    access.require(by, [environment], Capability.CONFIGURE)
    data = dict(data)
    if "condition" in data:
        data["condition"] = promql.normalise(data["condition"])
    problems = _problems(data)
    if problems:
        raise errors.ValidationFailed("invalid alert rule", field_errors=problems)
    with transaction.atomic():
        if rule is None or rule.pk is None:
            return model_create(model=AlertRule, data=data, fields=RULE_FIELDS, by=by,
                                extra={"environment": environment}, action="alertrule.create")
        locked = AlertRule.objects.select_for_update().get(pk=rule.pk)
        return model_update(instance=locked, data=data, fields=RULE_FIELDS, by=by, action="alertrule.update")[0]


def rule_delete(*, rule, by):
    access.require(by, [rule.environment], Capability.CONFIGURE)
    with transaction.atomic():
        model_delete(instance=rule, by=by, fields=RULE_FIELDS, action="alertrule.delete")


def install_defaults(environment):
    """The seed's rules for ``environment`` (idempotent: an existing rule of the same name is left as it is).
    Bootstrap data, like the seed's rollback triggers (releases.bootstrap): not an audited edit."""
    made = []
    for spec in DEFAULT_RULES:
        if AlertRule.objects.filter(environment=environment, name=spec["name"]).exists():
            continue
        fields = {k: v for k, v in spec.items() if k != "channels"}
        with transaction.atomic():
            rule = AlertRule.objects.create(environment=environment, **fields)
            rule.channels.set(Channel.objects.filter(name__in=spec["channels"]))
        made.append(rule)
    return made


def on_environment_saved(sender, instance, created, **kwargs):
    if created and instance.name == "production":
        install_defaults(instance)


# --- querying -------------------------------------------------------------------------------------------------
def _series(samples):
    return [{"labels": s.labels, "value": s.value if math.isfinite(s.value) else None}
            for s in samples[:MAX_SERIES_KEPT]]


def rule_test(*, environment, condition, by):
    """Run ``condition`` once against the environment's provider (the admin's and the API's "test" button):
    ``{"ok", "series", "error", "matched"}``. A bad condition is a 400 naming its position."""
    access.require(by, [environment], Capability.VIEW)
    problems = promql.problems(condition)
    if problems:
        raise errors.ValidationFailed("invalid alert rule", field_errors={"condition": problems})
    try:
        samples = providers.provider_for(environment).query(promql.normalise(condition))
    except providers.ProviderError as exc:
        return {"ok": False, "matched": False, "series": [], "error": str(exc)}
    return {"ok": True, "matched": bool(samples), "series": _series(samples), "error": ""}


# --- evaluation (beat) ----------------------------------------------------------------------------------------
def _describe(rule, series):
    shown = ", ".join(
        "{" + ",".join(f'{k}="{v}"' for k, v in sorted(s["labels"].items())) + "}"
        + (f" = {s['value']:g}" if s["value"] is not None else "") for s in series[:5])
    more = f" and {len(series) - 5} more" if len(series) > 5 else ""
    return f"{rule.condition}\n{shown}{more}" if series else rule.condition


def _notify(rule, kind, series, now):
    environment = rule.environment.name
    firing = kind == "firing"
    title = (f"[{settings.PRODUCT_NAME}] {'FIRING' if firing else 'RESOLVED'} [{rule.severity}] {rule.name} "
             f"({environment})")
    body = (f"{rule.description or rule.name}\n\n" + (_describe(rule, series) if firing else
                                                      f"{rule.condition}\nno longer returns anything.")
            + f"\n\n{settings.PORTAL_URL}/admin/monitoring/alertrule/{rule.pk}/change/")
    severity = {"critical": "failure", "warning": "warning"}.get(rule.severity, "info") if firing else "success"
    return delivery.notify(
        event=f"alert.{kind}", environment=environment, title=title, body=body, severity=severity,
        channels=list(rule.channels.all()), key=f"alert-{rule.pk}-{kind}-{now.timestamp():.3f}",
        data={"rule": rule.pk, "name": rule.name, "environment": environment, "severity": rule.severity,
              "state": kind, "series": series})


def evaluate_rule(rule, *, now=None, provider=None):
    """Evaluate one rule and apply what it changes. Returns the change ("" when none, "error" on a provider
    error: the state is kept and the error shown on the rule)."""
    now = now or timezone.now()
    provider = provider or providers.provider_for(rule.environment)
    try:
        samples = provider.query(rule.condition)
        error = ""
    except providers.ProviderError as exc:
        samples, error = [], str(exc)[:500]
    series = _series(samples)
    with transaction.atomic():
        locked = AlertRule.objects.select_for_update().get(pk=rule.pk)
        locked.environment = rule.environment
        if not locked.enabled:
            return ""
        if error:
            AlertRule.objects.filter(pk=locked.pk).update(last_evaluated_at=now, last_error=error)
            return "error"
        step = rules.alert_step(
            state=locked.state, since=locked.state_since.timestamp() if locked.state_since else None,
            matched=bool(samples), now=now.timestamp(), hold=locked.for_seconds, cooldown=locked.cooldown * 60,
            last_notified=locked.last_notified_at.timestamp() if locked.last_notified_at else None)
        fields = {"last_evaluated_at": now, "last_error": "", "last_result": series, "state": step.state}
        if step.change:
            fields["state_since"] = now
        if step.notify:
            fields["last_notified_at"] = now
        AlertRule.objects.filter(pk=locked.pk).update(**fields)
        if step.change:
            detail = _describe(locked, series)
            if step.suppressed:
                detail += f"\n(no notification: within the cooldown of {locked.cooldown} min)"
            AlertEvent.objects.create(rule=locked, at=now, change=step.change, from_state=locked.state,
                                      to_state=step.state, notified=bool(step.notify), detail=detail, series=series)
            audit.record(action=f"alertrule.{step.change}", obj=locked, by=None, reason=detail[:1000],
                         before={"state": locked.state}, after={"state": step.state, "notified": bool(step.notify)})
        if step.notify:
            _notify(locked, step.notify, series, now)
    return step.change


def evaluate_all(*, now=None):
    """Beat: every enabled rule, one provider per environment. Returns {rule id: change} for the rules whose state
    changed (a provider error changes nothing: it is shown on the rule)."""
    now = now or timezone.now()
    changes = {}
    by_environment = {}
    for rule in AlertRule.objects.filter(enabled=True).select_related("environment").order_by("environment_id",
                                                                                              "id"):
        if rule.environment.pk not in by_environment:
            by_environment[rule.environment.pk] = providers.provider_for(rule.environment)
        change = evaluate_rule(rule, now=now, provider=by_environment[rule.environment.pk])
        if change and change != "error":
            changes[rule.pk] = change
    notify_slo_burn_rates(now=now)
    return changes


def notify_slo_burn_rates(*, now=None):
    """The SLOs' multi-window burn-rate alerts (monitoring.reliability), on the alert engine's schedule: each
    firing window pair notifies ``slo.burn_rate`` at most once per long window (the notification key), a page
    for the fast pair and a ticket for the slow ones as their severity says. Returns how many were notified."""
    from monitoring.reliability.selectors import slo_burn_rate_alerts

    now = now or timezone.now()
    sent = 0
    for alert in slo_burn_rate_alerts(now):
        window = int(alert["long_window_seconds"])
        key = f"slo-{alert['slo']}-{window}-{int(now.timestamp() // window)}"
        where = f"{alert['component']} in {alert['environment']}" if alert["component"] else alert["environment"]
        title = (f"[{settings.PRODUCT_NAME}] [{alert['severity']}] SLO {alert['name']} ({where}): error budget "
                 f"burning {alert['long_burn_rate']:.1f}x")
        body = (f"Burn rate {alert['long_burn_rate']:.2f} over {_duration(window)} and "
                f"{alert['short_burn_rate']:.2f} over {_duration(int(alert['short_window_seconds']))} "
                f"(threshold {alert['threshold']:g}); budget remaining {alert['budget_remaining']}.\n"
                f"{settings.PORTAL_URL}/admin/monitoring/servicelevelobjective/{alert['slo']}/change/")
        if delivery.notify(event="slo.burn_rate", environment=alert["environment"], key=key, title=title, body=body,
                           severity="failure" if alert["severity"] == "page" else "warning", data=alert):
            sent += 1
    return sent


def alert_states():
    """For /metrics (``pmrelease_alerts``): (name, environment, severity, state) of every enabled rule."""
    return AlertRule.objects.filter(enabled=True).values_list("name", "environment__name", "severity", "state")


# --- export ---------------------------------------------------------------------------------------------------
def alert_name(name):
    """A rule name as a Prometheus alert name (CamelCase letters and digits): "High Error Rate" → HighErrorRate."""
    words = re.findall(r"[A-Za-z0-9]+", name)
    text = "".join(w[:1].upper() + w[1:] for w in words) or "Alert"
    return text if text[0].isalpha() else f"Alert{text}"


def _duration(seconds):
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def export_rules(environment=None):
    """The enabled rules (of one environment, or all) as a Prometheus rules document: one group per
    environment, each rule with ``alert``, ``expr``, ``for``, labels ``severity``/``environment`` and
    annotations ``summary``/``description``."""
    queryset = AlertRule.objects.filter(enabled=True).select_related("environment").order_by(
        "environment__position", "environment__name", "name")
    if environment is not None:
        queryset = queryset.filter(environment=environment)
    groups = {}
    for rule in queryset:
        entry = {"alert": alert_name(rule.name), "expr": rule.condition}
        if rule.for_seconds:
            entry["for"] = _duration(rule.for_seconds)
        entry["labels"] = {"severity": rule.severity, "environment": rule.environment.name}
        entry["annotations"] = {"summary": rule.name, "description": rule.description or rule.name}
        groups.setdefault(rule.environment.name, []).append(entry)
    return {"groups": [{"name": f"pmrelease-{name}", "rules": entries} for name, entries in groups.items()]}


def export_yaml(environment=None):
    import yaml

    return yaml.safe_dump(export_rules(environment), sort_keys=False, allow_unicode=True, width=10_000)


def history(rule, *, since=None):
    events = AlertEvent.objects.filter(rule=rule)
    if since is not None:
        events = events.filter(at__gte=since)
    return events



def prune_events(*, now=None, batch=5000):
    """Delete the rule state changes older than ``ALERT_EVENT_RETENTION_DAYS``, except each rule's latest (which
    says why it is in its state today); returns how many (beat, hourly)."""
    import datetime as dt

    from django.db.models import Max

    from pmrelease.retention import prune_in_batches

    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.ALERT_EVENT_RETENTION_DAYS)
    latest = AlertEvent.objects.values("rule_id").annotate(last=Max("id")).values("last")
    return prune_in_batches(AlertEvent.objects.filter(at__lt=cutoff).exclude(pk__in=latest), batch)
