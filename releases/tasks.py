"""Thin Celery tasks for releases: load by id, call a service."""
from celery import shared_task
from django.conf import settings

from . import services
from .models import Release


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_approvers(release_id, approval_round):
    release = Release.objects.filter(pk=release_id).first()
    if release is None:
        return 0
    return services.release_notify_approvers(release=release, approval_round=approval_round)


@shared_task
def secret_rotation_check():
    from . import secrets

    return secrets.check_rotation()


@shared_task
def release_cadence_check():
    return services.cadence_check_and_notify()


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=settings.DEPLOY_STEP_TIME_LIMIT,
             time_limit=settings.DEPLOY_STEP_TIME_LIMIT + 60)
def advance_deployment(deployment_id):
    """Run the deployment's current step (idempotent: a redelivered task finds the step done or held)."""
    from .deploy import engine

    return engine.advance(deployment_id)


@shared_task
def simulated_ci_report(deployment_id, gate_id):
    """The simulation backend's CI: report a gate's result through the real gate service (idempotent)."""
    from .deploy import services as deploy_services

    return deploy_services.simulated_ci_report(deployment_id=deployment_id, gate_id=gate_id)


@shared_task
def deployment_watchdog():
    """Resume deployments whose worker vanished, fail those that cannot finish, start queued ones."""
    from .deploy import engine

    return engine.watchdog()


@shared_task
def watch_deployments():
    """One round of the rollback-trigger watch (beat, every MONITORING_TICK_SECONDS)."""
    from .deploy import watch

    return watch.tick()


@shared_task
def prune_evaluations():
    from .deploy import watch

    return watch.prune()


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_trigger_alert(deployment_id, trigger_id, detail):
    """E-mail the people who may deploy to the environment that a trigger with action 'alert' fired."""
    from .deploy import services as deploy_services

    return deploy_services.trigger_alert_send(deployment_id=deployment_id, trigger_id=trigger_id, detail=detail)
