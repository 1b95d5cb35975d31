"""Thin Celery tasks of the flags app (beat entries in flags/beat.py)."""
import logging

from celery import shared_task

from . import services, usage

logger = logging.getLogger(__name__)


@shared_task
def advance_ramps():
    """Apply the due steps of running gradual rollouts (idempotent: a step is applied once)."""
    advanced = services.advance_due_ramps()
    if advanced:
        logger.info("advanced %d gradual rollout(s)", advanced)
    return advanced


@shared_task
def notify_stale_flags():
    """E-mail owners about flags past their expected lifetime or unused for 30 days."""
    return services.notify_stale_flags()


@shared_task
def flush_usage():
    """Write this worker's pending evaluation counts (the web processes flush their own in a thread)."""
    return usage.flush()
