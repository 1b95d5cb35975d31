"""Periodic integrity work on the audit trail: the chain-head checkpoint and the full check."""
import logging

from celery import shared_task

from . import audit, checkpoints

logger = logging.getLogger(__name__)


@shared_task
def audit_checkpoint():
    """Append a signed checkpoint of the trail's head to AUDIT_CHECKPOINT_PATH and the log (if it grew)."""
    checkpoint = checkpoints.write()
    return checkpoint.as_line() if checkpoint else None


@shared_task
def audit_verify_chain():
    report = audit.verify()
    if report.ok:
        logger.info("audit chain intact (%d events)", report.checked)
    else:
        for problem in report.breaks:
            logger.error("audit chain BROKEN: %s", problem)
    return {"ok": report.ok, "checked": report.checked, "breaks": [str(b) for b in report.breaks]}
