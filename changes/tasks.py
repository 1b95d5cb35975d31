"""Thin Celery tasks of the changes app: call a service, return. Idempotent."""
import logging

from celery import shared_task

from . import services

log = logging.getLogger(__name__)


@shared_task
def close_validated():
    closed = services.close_validated()
    if closed:
        log.info("closed %d validated change(s)", closed)
    return closed


@shared_task
def remind_open_reviews():
    return services.remind_open_reviews()
