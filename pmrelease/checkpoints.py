"""Chain-head checkpoints of the audit trail, outside the database.

Beat appends one line to ``settings.AUDIT_CHECKPOINT_PATH`` (JSON lines, opened for appending only) whenever
the trail grew, and writes the same line to the log: how many events the trail had, the id and hash of the
newest, and when. Every line has its own sequence number, the signature of the line before it and its own
HMAC signature under the audit key. ``compare`` checks the file (a forged, edited, re-ordered or copied line
breaks the sequence or a signature) and the trail against the newest valid checkpoint: fewer events, or
another hash at the checkpointed id, means rows were deleted (the tail, or everything by TRUNCATE) even
when every remaining row still chains. Mount the file where the database's users cannot write, and make it
append-only there (``chattr +a``); the log is the second copy.
"""
import datetime as dt
import fcntl
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Max

from . import audit
from .models import AuditEvent

log = logging.getLogger("pmrelease.audit")

FIELDS = ("seq", "at", "count", "last_id", "last_hash", "prev")


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    at: str
    count: int
    last_id: int | None
    last_hash: str
    prev: str
    sig: str

    def payload(self):
        return [getattr(self, name) for name in FIELDS]

    def as_line(self):
        return json.dumps({**{name: getattr(self, name) for name in FIELDS}, "sig": self.sig},
                          separators=(",", ":"))

    def __str__(self):
        return f"checkpoint #{self.seq} ({self.at}: {self.count} events up to #{self.last_id})"


def path():
    return Path(settings.AUDIT_CHECKPOINT_PATH)


def _parse(line):
    data = json.loads(line)
    return Checkpoint(**{name: data[name] for name in (*FIELDS, "sig")})


def read(file_path=None):
    """[(line number, Checkpoint or None, problem or "")] for every line of the file (none if it is missing)."""
    file_path = Path(file_path or path())
    try:
        text = file_path.read_text()
    except FileNotFoundError:
        return []
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            checkpoint = _parse(line)
        except (ValueError, KeyError, TypeError) as exc:
            rows.append((number, None, f"not a checkpoint ({exc.__class__.__name__})"))
            continue
        if not hmac.compare_digest(str(checkpoint.sig), audit.sign(checkpoint.payload())):
            rows.append((number, checkpoint, "its signature is wrong: forged or edited"))
            continue
        rows.append((number, checkpoint, ""))
    return rows


def check_file(file_path=None):
    """(newest valid checkpoint or None, [problems]): the file's own sequence, links and signatures."""
    problems, newest, previous = [], None, None
    for number, checkpoint, problem in read(file_path):
        if problem:
            problems.append(f"checkpoint file line {number}: {problem}")
            continue
        if previous is not None:
            if checkpoint.seq != previous.seq + 1 or checkpoint.prev != previous.sig:
                problems.append(f"checkpoint file line {number}: {checkpoint} does not follow #{previous.seq} "
                                "(lines removed, re-ordered or an older line copied in)")
            elif checkpoint.count < previous.count or (checkpoint.last_id or 0) < (previous.last_id or 0):
                problems.append(f"checkpoint file line {number}: {checkpoint} has fewer events than "
                                f"#{previous.seq}: rows were deleted between them")
        elif checkpoint.seq != 1 or checkpoint.prev != "":
            problems.append(f"checkpoint file line {number}: the file starts at {checkpoint}, not #1: its "
                            "beginning was removed")
        if newest is None or checkpoint.seq > newest.seq:
            newest = checkpoint
        previous = checkpoint
    return newest, problems


def compare(report, file_path=None):
    """Add to ``report`` (``audit.walk``'s) the file's problems and how the trail differs from the newest
    valid checkpoint."""
    newest, problems = check_file(file_path)
    report.breaks += [audit.Break(None, problem) for problem in problems]
    report.checkpoint = newest
    if newest is None or newest.last_id is None:
        return report
    row = AuditEvent.objects.filter(pk=newest.last_id).values_list("hash", flat=True).first()
    upto = AuditEvent.objects.filter(pk__lte=newest.last_id).count()
    if row is None:
        gone = "the table is empty (TRUNCATE?)" if report.checked == 0 else f"the trail has {report.checked}"
        report.breaks.append(audit.Break(newest.last_id, f"missing: {newest} recorded it as the newest of "
                                                         f"{newest.count} events; {gone}: the tail was deleted"))
    elif not hmac.compare_digest(row, newest.last_hash):
        report.breaks.append(audit.Break(newest.last_id, f"its hash differs from {newest}: re-hashed"))
    elif upto != newest.count:
        report.breaks.append(audit.Break(None, f"{newest} recorded {newest.count} events up to #{newest.last_id}; "
                                               f"the trail has {upto}: rows were deleted or inserted before it"))
    return report


def _last_line(handle):
    """The file's last non-empty line (read backwards from the end: the file only grows)."""
    handle.seek(0, os.SEEK_END)
    end = handle.tell()
    chunk = b""
    position = end
    while position > 0:
        step = min(4096, position)
        position -= step
        handle.seek(position)
        chunk = handle.read(step) + chunk
        lines = [line for line in chunk.splitlines() if line.strip()]
        if len(lines) > 1 or (lines and position == 0):
            return lines[-1].decode()
    return None


def write(now=None, file_path=None):
    """Append a checkpoint of the trail's head if it grew since the last one; also to the log.

    Returns the new Checkpoint, or None when nothing changed. When the trail is shorter than the last
    checkpoint says, nothing is written (that checkpoint keeps the evidence) and the error is logged.
    """
    file_path = Path(file_path or path())
    file_path.parent.mkdir(parents=True, exist_ok=True)
    head = AuditEvent.objects.aggregate(count=Count("id"), last_id=Max("id"))  # one statement: one snapshot
    last_hash = (AuditEvent.objects.filter(pk=head["last_id"]).values_list("hash", flat=True).first()
                 if head["last_id"] is not None else audit.GENESIS)
    fd = os.open(file_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "rb+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        line = _last_line(handle)
        previous = _parse(line) if line else None
        if previous is not None:
            if (previous.count, previous.last_id, previous.last_hash) == (head["count"], head["last_id"], last_hash):
                return None
            if head["count"] < previous.count or (head["last_id"] or 0) < (previous.last_id or 0):
                log.error("audit trail shrank: %s, the trail has %d events up to #%s; no checkpoint written",
                          previous, head["count"], head["last_id"])
                return None
        fields = {"seq": previous.seq + 1 if previous else 1,
                  "at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
                  "count": head["count"], "last_id": head["last_id"], "last_hash": last_hash,
                  "prev": previous.sig if previous else ""}
        checkpoint = Checkpoint(**fields, sig=audit.sign([fields[name] for name in FIELDS]))
        handle.write(checkpoint.as_line().encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    log.info("audit checkpoint %s", checkpoint.as_line())
    return checkpoint
