"""The releases app's events on the delivery engine (pmrelease.delivery): deployments started, succeeded,
failed or rolled back, a gate waiting for an override, a rollback trigger fired, a release awaiting approval.

Connected in ``ReleasesConfig.ready`` to the app's own signals and django-fsm's ``post_transition``, so the
engine itself stays free of notification code. ``delivery.notify`` only writes rows and dispatches after
commit: nothing here can fail or slow a deployment.
"""
from django.conf import settings

from pmrelease import delivery

from .models import Deployment, DeploymentStatus, Environment, Release, ReleaseStatus

STEP_EVENTS = ("running", "waiting", "succeeded", "failed", "skipped")


def _link(kind, pk):
    return f"{settings.PORTAL_URL}/admin/releases/{kind}/{pk}/change/"


def _deployment_data(dep, **extra):
    return {"deployment": dep.pk, "environment": dep.environment.name, "version": dep.release.version,
            "status": dep.status, "strategy": dep.strategy, "link": _link("deployment", dep.pk), **extra}


def on_deployment_started(sender, *, deployment, **kwargs):
    dep = deployment
    delivery.notify(
        event="deployment.started", environment=dep.environment.name, key=f"deployment-{dep.pk}-started",
        title=f"[{settings.PRODUCT_NAME}] Deploying {dep.release.version} to {dep.environment.name}",
        body=f"Deployment #{dep.pk} of {dep.release.version} to {dep.environment.name} started "
             f"({dep.strategy}).\n{_link('deployment', dep.pk)}",
        data=_deployment_data(dep))


def on_deployment_finished(sender, *, deployment, automatic_rollback, reason, **kwargs):
    dep = deployment
    if dep.status == DeploymentStatus.SUCCEEDED:
        event, severity, what = "deployment.succeeded", "success", "succeeded"
    elif dep.status == DeploymentStatus.ROLLED_BACK:
        event, severity = "deployment.rolled_back", "warning"
        what = "was rolled back automatically" if automatic_rollback else "was rolled back"
    else:
        event, severity, what = "deployment.failed", "failure", "failed"
    delivery.notify(
        event=event, environment=dep.environment.name, key=f"deployment-{dep.pk}-{dep.status}", severity=severity,
        title=f"[{settings.PRODUCT_NAME}] {dep.release.version} on {dep.environment.name} {what}",
        body=f"Deployment #{dep.pk} of {dep.release.version} to {dep.environment.name} {what}"
             + (f": {reason}" if reason else ".") + f"\n{_link('deployment', dep.pk)}",
        data=_deployment_data(dep, automatic_rollback=bool(automatic_rollback), reason=reason or ""))


def on_transition(sender, instance, name, source, target, **kwargs):
    """A gate failed with on-failure 'warn': the deployment waits for an authorised override. A release was
    approved."""
    if sender is Release and target == ReleaseStatus.APPROVED:
        release = instance
        delivery.notify(
            event="release.approved", key=f"release-{release.pk}-approved-{release.approval_round}",
            title=f"[{settings.PRODUCT_NAME}] Release {release.version} approved",
            body=f"{release.type.title()} release {release.version} — {release.title} — is approved.\n"
                 f"{_link('release', release.pk)}",
            data={"release": release.pk, "version": release.version, "type": release.type, "title": release.title,
                  "environments": list(release.environments.values_list("name", flat=True)),
                  "link": _link("release", release.pk)})
        return
    if sender is not Deployment or name != "wait_for_person":
        return
    waiting = instance.waiting_for or ""
    if "override" not in waiting:
        return
    dep = instance
    delivery.notify(
        event="gate.override_needed", environment=dep.environment.name, severity="warning",
        key=f"deployment-{dep.pk}-override-{dep.steps.filter(status='waiting').values_list('pk', flat=True).first()}",
        title=f"[{settings.PRODUCT_NAME}] {dep.release.version} on {dep.environment.name} waits for a gate override",
        body=f"Deployment #{dep.pk} waits for {waiting}.\n{_link('deployment', dep.pk)}",
        data=_deployment_data(dep, waiting_for=waiting))


def trigger_fired(*, deployment, trigger, detail, action, recipients=()):
    dep = deployment
    delivery.notify(
        event="trigger.fired", environment=dep.environment.name, severity="failure" if action == "rollback" else
        "warning", key=f"deployment-{dep.pk}-trigger-{trigger.pk}-{action}", recipients=recipients,
        title=f"[{settings.PRODUCT_NAME}] Alert: {trigger} on {dep.environment.name} ({dep.release.version})",
        body=f"Rollback trigger {trigger} fired for deployment #{dep.pk} of {dep.release.version} to "
             f"{dep.environment.name} (action: {action}):\n\n{detail}\n\n{_link('deployment', dep.pk)}\n",
        data=_deployment_data(dep, trigger=str(trigger), action=action, detail=detail))


def approval_requested(*, release, approval_round, recipients):
    """The release awaits approval: its eligible approvers by e-mail, and the subscribed channels (of each
    environment the release targets)."""
    link = _link("release", release.pk)
    title = f"[{settings.PRODUCT_NAME}] Release {release.version} awaits your approval"
    body = (f"{release.type.title()} release {release.version} — {release.title}\n\n"
            f"{release.description}\n\nReview and approve: {link}\n")
    data = {"release": release.pk, "version": release.version, "round": approval_round, "link": link}
    names = list(release.environments.values_list("name", flat=True)) or [""]
    channels = {c.pk: c for name in names for c in delivery.subscribed_channels("approval.requested", name)}
    return delivery.notify(event="approval.requested", key=f"release-{release.pk}-round-{approval_round}",
                           environment=names[0] if len(names) == 1 else "", title=title, body=body, data=data,
                           channels=list(channels.values()), recipients=recipients, subscribed=False)


def on_step_saved(sender, instance, created, **kwargs):
    """A step started, waits, or ended: ``deployment.step_changed`` (once per step and status)."""
    step = instance
    if created or step.status not in STEP_EVENTS:
        return
    dep = Deployment.objects.select_related("release", "environment").filter(pk=step.deployment_id).first()
    if dep is None or not delivery.subscribed_channels("deployment.step_changed", dep.environment.name):
        return
    delivery.notify(
        event="deployment.step_changed", environment=dep.environment.name,
        key=f"deployment-{dep.pk}-step-{step.pk}-{step.status}",
        title=f"[{settings.PRODUCT_NAME}] {dep.release.version} on {dep.environment.name}: step {step.position} "
              f"{step.name} {step.status}",
        body=f"Deployment #{dep.pk}, step {step.position} ({step.name}): {step.status}"
             + (f" — {step.outcome}" if step.outcome else "") + f"\n{_link('deployment', dep.pk)}",
        data=_deployment_data(dep, step={"position": step.position, "phase": step.phase, "kind": step.kind,
                                         "name": step.name, "status": step.status, "outcome": step.outcome}))


def gate_result(*, deployment, result):
    dep = deployment
    delivery.notify(
        event="gate.result", environment=dep.environment.name, key=f"gate-result-{result.pk}",
        severity="success" if result.status == "passed" else "warning",
        title=f"[{settings.PRODUCT_NAME}] {result.gate.name} {result.status} for {dep.release.version} on "
              f"{dep.environment.name}",
        body=f"{result.gate.name}: {result.status} ({result.passed} passed, {result.failed} failed, {result.errors} "
             f"errors) for deployment #{dep.pk}, attempt {result.attempt}.\n{_link('deployment', dep.pk)}",
        data=_deployment_data(dep, gate={"slug": result.gate.slug, "name": result.gate.name, "status": result.status,
                                         "attempt": result.attempt, "tests": result.tests, "passed": result.passed,
                                         "failed": result.failed, "errors": result.errors, "url": result.url}))


def environment_exists(name):
    return Environment.objects.filter(name=name).exists()
