"""The changes app's part of the demo: the approval rules, windows, a freeze, a standard-change template, the
production history's covering changes (the releases' deployment histories run here, since production and dr
need approved changes), changes in every state, and an exception for the compliance report."""
import datetime as dt

import time_machine
from django.utils import timezone

from releases.demo import deploy_history

from . import services
from .models import ChangeRequest, ChangeTemplate, ChangeWindow

PLANS = {"implementation_plan": "Canary 10% → 50% → 100% with the production rollback triggers watching",
         "rollback_plan": "Automatic rollback on a fired trigger; manual rollback from the deployment page",
         "testing_plan": "Staging gates (integration, E2E, security) passed; smoke tests after the switch"}


def seed(*, envs, users, release_history=(), stdout, **_):
    services.ensure_default_rules()
    first_run = not ChangeWindow.objects.exists()
    for item in release_history:
        deploy_history(item, envs, users, before_deploy=lambda release, env, at: _cover(release, env, at, users))
    if first_run:  # after the history, which ran at its own dates, before these windows and freezes existed
        _windows_and_freeze(envs, users)
        _template(envs, users)
        _every_state(envs, users)
    stdout.write(f"Changes: {ChangeRequest.objects.count()} change requests, {ChangeWindow.objects.count()} windows.")
    return {}


def _windows_and_freeze(envs, users):
    services.window_save(environment=envs["production"], by=users["admin"], data={
        "name": "Demo: around the clock", "days": [0, 1, 2, 3, 4, 5, 6], "start_time": dt.time(0, 0),
        "end_time": dt.time(0, 0), "timezone": "Europe/Berlin"})
    services.window_save(environment=envs["dr"], by=users["admin"], data={
        "name": "Mid-week business hours", "days": [1, 2, 3], "start_time": dt.time(10, 0),
        "end_time": dt.time(16, 0), "timezone": "Europe/Berlin"})
    start = (timezone.now() + dt.timedelta(days=10)).replace(hour=6, minute=0, second=0, microsecond=0)
    services.freeze_save(by=users["admin"], data={
        "reason": "Campaign peak: the big newsletter weekend", "environments": [envs["production"], envs["dr"]],
        "starts_at": start, "ends_at": start + dt.timedelta(days=2), "timezone": "Europe/Berlin"})
    services.freeze_save(by=users["admin"], data={
        "reason": "Year-end freeze", "rule": "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=23", "duration_minutes": 10 * 24 * 60,
        "rule_start": dt.datetime(2026, 12, 23, 0, 0, tzinfo=dt.UTC), "timezone": "Europe/Berlin",
        "environments": [envs["dr"]]})


def _template(envs, users):
    template = services.template_save(by=users["admin"], data={
        "name": "Rotate TLS certificates", "type": "infrastructure", "environments": [envs["production"], envs["dr"]],
        "description": "Renew and roll out the certificates of the public endpoints.",
        "implementation_plan": "cert-manager renews; restart the ingress pods one by one",
        "rollback_plan": "Restore the previous secret", "testing_plan": "TLS handshake checks on every endpoint",
        "max_risk": "medium"})
    services.template_approve(template=template, by=users["admin"])


def _cover(release, env, at, users):
    """An approved change covering ``release`` in a gated environment, made an hour before its deployment."""
    if not services.requires_change(env):
        return
    with time_machine.travel(at - dt.timedelta(hours=1), tick=True):
        change = services.change_create(by=users["approver2"], links=[release], data={
            "title": f"Deploy {release.version} to {env.name}", "environments": [env], "impact": "medium",
            "description": f"{release.title}: the release's canary rollout to {env.name}.", **PLANS})
        services.change_submit(change=change, by=users["approver2"])
        services.change_approve(change=change, by=users["approver"], comment="Technical review done")
        services.change_approve(change=change, by=users["ops2"], comment="Operations: go")
        services.change_approve(change=change, by=users["product"], comment="Product: ship it")


def _every_state(envs, users):
    """Changes in each state of the workflow, an emergency awaiting its review, and one refused self-approval
    (the compliance report's exception)."""
    from releases.models import Release

    prod = envs["production"]
    new = Release.objects.filter(version="2.2.0").first()
    make = lambda title, **kw: services.change_create(  # noqa: E731
        by=users["approver2"], links=[new] if new else [], data={"title": title, "environments": [prod], **PLANS, **kw})
    make("Deploy 2.3.0 (draft, plans still open)", implementation_plan="")
    submitted = make("Rotate the SMTP relay credentials", type="security")
    services.change_submit(change=submitted, by=users["approver2"])
    reviewing = make("Upgrade PostgreSQL to 16.4", type="infrastructure", impact="high")
    services.change_submit(change=reviewing, by=users["approver2"])
    services.change_approve(change=reviewing, by=users["approver"], comment="Reviewed the runbook")
    try:  # the requester tries to approve their own change: refused, and the refusal recorded
        services.change_approve(change=reviewing, by=users["approver2"])
    except Exception:  # noqa: BLE001 - the demo shows the refusal; its audit row stays
        pass
    for version in ("2.2.0", "2.2.1"):  # the README walkthrough's production deployments
        release = Release.objects.filter(version=version).first()
        approved = services.change_create(by=users["approver2"], links=[release] if release else [], data={
            "title": f"Deploy {version} to production", "environments": [prod], **PLANS,
            "description": "The walkthrough's production deployment."})
        services.change_submit(change=approved, by=users["approver2"])
        services.change_approve(change=approved, by=users["approver"])
        services.change_approve(change=approved, by=users["ops2"])
        services.change_approve(change=approved, by=users["product"])
    scheduled = make("Enable connection pooling", planned_start=timezone.now() + dt.timedelta(days=3), duration=30)
    services.change_submit(change=scheduled, by=users["approver2"])
    services.change_approve(change=scheduled, by=users["approver"])
    services.change_approve(change=scheduled, by=users["ops2"])
    services.change_approve(change=scheduled, by=users["product"])
    services.change_schedule(change=scheduled, by=users["ops"])
    cancelled = make("Move the bounce processor (superseded)")
    services.change_cancel(change=cancelled, by=users["approver2"], reason="superseded by the queue redesign")
    # the first rollback's emergency change went through its review; the last one still waits for it
    reviewed = ChangeRequest.objects.filter(change_class="emergency").order_by("id").first()
    if reviewed is not None:
        services.change_record_review(change=reviewed, by=users["approver"],
                                      root_cause="The 50% health check caught a connection-pool exhaustion under load",
                                      prevention="Load test the pool size in staging's performance gate")
        services.change_retro_approve(change=reviewed, by=users["ops2"], comment="Rollback was the right call")
        services.change_close(change=reviewed, by=users["ops"], close_code="successful",
                              notes="Rolled back within two minutes; no customer impact reported")
    services.close_validated()  # what beat does each minute: the history's bake times are long over
    standard = services.change_create_from_template(
        template=ChangeTemplate.objects.get(name="Rotate TLS certificates"), by=users["approver2"],
        data={"title": "Rotate TLS certificates (December)", "environments": [prod], "impact": "low"})
    services.change_submit(change=standard, by=users["approver2"])

