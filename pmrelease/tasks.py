"""Periodic integrity check of the audit trail."""
import logging

from celery import shared_task

from . import audit

logger = logging.getLogger(__name__)


@shared_task
def audit_verify_chain():
    ok, bad_id, checked = audit.verify_chain()
    if ok:
        logger.info("audit chain intact (%d events)", checked)
    else:
        logger.error("audit chain BROKEN at event %s after %d intact events", bad_id, checked)
    return {"ok": ok, "first_bad_event": bad_id, "checked": checked}
