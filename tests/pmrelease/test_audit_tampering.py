"""Tampering with the audit trail using the database's own tools is detected: every stored field is under a
keyed hash, a re-hashed chain without the key fails, a deleted tail or an emptied table is caught by the
signed checkpoints (also when an older checkpoint line is copied back), TRUNCATE is refused on PostgreSQL, and
``audit_verify`` reports every break with its row.

The tampering helper gets past the append-only triggers the way an attacker with database rights would:
``session_replication_role = replica`` on PostgreSQL, dropping the trigger on SQLite (both inside the test's
transaction, so they are undone with it)."""
import datetime as dt
import importlib
import json
import logging

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from pmrelease import audit, checkpoints
from pmrelease.models import AuditEvent

migration = importlib.import_module("pmrelease.migrations.0003_auditevent_keyed_chain")

pytestmark = pytest.mark.django_db
PG = connection.vendor == "postgresql"


def tamper(sql, params=()):
    """Run ``sql`` past the append-only triggers, as someone with the database's own rights would."""
    with transaction.atomic(), connection.cursor() as cursor:
        if PG:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(sql, params)
            cursor.execute("SET LOCAL session_replication_role = origin")
        else:
            cursor.execute("DROP TRIGGER pmrelease_auditevent_no_update")
            cursor.execute(sql, params)
            cursor.execute(migration.SQLITE_UP)


def trail(n=4, **extra):
    return [audit.record(action="test.action", object_type="x", object_id=str(i), object_repr=f"thing {i}",
                         before={"a": i}, after={"a": i + 1}, reason=f"r{i}", **extra) for i in range(n)]


ALTERATIONS = {
    "created_at": ("created_at = %s", lambda e: e.created_at + dt.timedelta(seconds=1)),
    "actor_id": ("actor_id = %s", lambda e: 4242),
    "actor_username": ("actor_username = %s", lambda e: "mallory"),
    "action": ("action = %s", lambda e: "release.approve"),
    "object_type": ("object_type = %s", lambda e: "releases.release"),
    "object_id": ("object_id = %s", lambda e: "99"),
    "object_repr": ("object_repr = %s", lambda e: "something else"),
    "before": ("before = %s", lambda e: json.dumps({"a": 100})),
    "after": ("after = %s", lambda e: json.dumps({"a": 100})),
    "reason": ("reason = %s", lambda e: "forged"),
    "request_id": ("request_id = %s", lambda e: "req-forged"),
}


@pytest.mark.parametrize("name", list(ALTERATIONS))
def test_verify__one_field_altered__reported_at_its_row(name):
    events = trail()
    target = events[1]
    assignment, value = ALTERATIONS[name]
    tamper(f"UPDATE pmrelease_auditevent SET {assignment} WHERE id = %s", [value(target), target.pk])
    report = audit.verify()
    assert [b.event_id for b in report.breaks] == [target.pk], report.breaks
    assert "altered" in report.breaks[0].problem and report.checked == 4


def test_verify__id_changed__reported():
    events = trail(3)
    tamper("UPDATE pmrelease_auditevent SET id = %s WHERE id = %s", [events[-1].pk + 1000, events[-1].pk])
    report = audit.verify()
    assert [b.event_id for b in report.breaks] == [events[-1].pk + 1000]


def test_verify__chain_rehashed_without_the_key__every_rehashed_row_reported(settings):
    """An attacker alters a row and re-computes every hash from it with the portal's own function, but
    without the audit key (here: a guessed one): each re-hashed row is a break."""
    events = trail(5)
    tamper("UPDATE pmrelease_auditevent SET reason = 'forged' WHERE id = %s", [events[1].pk])
    real_key = audit.key()
    settings.AUDIT_KEY = "the attacker's guess"
    prev = events[0].hash
    rehashed = []
    for event in AuditEvent.objects.filter(pk__gte=events[1].pk).order_by("id"):
        event.prev_hash = prev
        event.hash = audit.digest(event)
        rehashed.append((event.prev_hash, event.hash, event.pk))
        prev = event.hash
    for row in rehashed:
        tamper("UPDATE pmrelease_auditevent SET prev_hash = %s, hash = %s WHERE id = %s", row)
    settings.AUDIT_KEY = real_key.decode()
    report = audit.verify()
    assert [b.event_id for b in report.breaks] == [e.pk for e in events[1:]]


def test_verify__rows_rehashed_as_unkeyed_legacy_rows__reported():
    events = trail(3)
    for event in events[1:]:
        event.scheme = audit.LEGACY
        event.prev_hash = AuditEvent.objects.get(pk=event.pk - 1).hash if event is not events[1] else events[0].hash
        event.hash = audit.digest(event)
        tamper("UPDATE pmrelease_auditevent SET scheme = 1, prev_hash = %s, hash = %s WHERE id = %s",
               [event.prev_hash, event.hash, event.pk])
    report = audit.verify()
    assert [b.event_id for b in report.breaks] == [events[1].pk, events[2].pk]
    assert all("unkeyed" in b.problem for b in report.breaks)


def test_verify__rows_of_the_previous_code_then_keyed_rows__intact():
    """Chains written before the key (scheme 1, SHA-256 of fewer fields) keep verifying: existing rows are
    not migrated; the first keyed row anchors them."""
    prev = audit.GENESIS
    with connection.cursor() as cursor:
        for i in range(3):
            legacy = AuditEvent(scheme=audit.LEGACY, created_at=dt.datetime(2026, 1, 1, 12, i, tzinfo=dt.UTC),
                                actor_username="dev", action="release.create", object_type="releases.release",
                                object_id=str(i), before=None, after={"title": f"t{i}"}, reason="", request_id="",
                                prev_hash=prev)
            legacy.hash = audit.digest(legacy)
            cursor.execute(
                "INSERT INTO pmrelease_auditevent (created_at, actor_username, action, object_type, object_id, "
                "object_repr, after, reason, request_id, prev_hash, hash, scheme) "
                "VALUES (%s, 'dev', 'release.create', 'releases.release', %s, '', %s, '', '', %s, %s, 1)",
                [legacy.created_at, str(i), json.dumps(legacy.after), prev, legacy.hash])
            prev = legacy.hash
    trail(2)
    report = audit.verify()
    assert report.ok, report.breaks
    assert report.checked == 5


def test_verify__deleted_tail__caught_by_the_checkpoint():
    events = trail(5)
    checkpoints.write()
    tamper("DELETE FROM pmrelease_auditevent WHERE id >= %s", [events[3].pk])
    assert audit.walk().ok  # what remains still chains: only the checkpoint shows the loss
    report = audit.verify()
    assert [b.event_id for b in report.breaks] == [events[4].pk]
    assert "tail was deleted" in report.breaks[0].problem


def test_verify__deleted_tail_and_older_checkpoint_line_copied_back__both_caught():
    events = trail(3)
    first = checkpoints.write()
    events += trail(2)
    checkpoints.write()
    tamper("DELETE FROM pmrelease_auditevent WHERE id >= %s", [events[3].pk])
    path = checkpoints.path()
    with open(path, "a") as handle:  # the older line, which matches the shortened trail, restored at the end
        handle.write(first.as_line() + "\n")
    report = audit.verify()
    problems = [str(b) for b in report.breaks]
    assert any("line 3" in p and "does not follow #2" in p for p in problems), problems
    assert any(p.startswith(f"event #{events[4].pk}: missing") for p in problems), problems
    assert report.checkpoint.seq == 2


def test_verify__forged_checkpoint_line__signature_reported():
    trail(2)
    checkpoint = checkpoints.write()
    forged = json.loads(checkpoint.as_line()) | {"count": 1}
    checkpoints.path().write_text(json.dumps(forged) + "\n")
    report = audit.verify()
    assert [str(b) for b in report.breaks] == ["checkpoint file line 1: its signature is wrong: forged or edited"]


def test_verify__table_emptied__caught_by_the_checkpoint():
    trail(3)
    checkpoints.write()
    if PG:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL pmrelease.audit_truncate = 'allow'")
            cursor.execute("TRUNCATE pmrelease_auditevent")
    else:
        tamper("DELETE FROM pmrelease_auditevent")
    report = audit.verify()
    assert report.checked == 0 and not report.ok
    assert "the table is empty" in str(report.breaks[0])


@pytest.mark.skipif(not PG, reason="TRUNCATE is PostgreSQL's (SQLite has none; its DELETE is caught by the checkpoint)")
def test_truncate__audit_table__refused_on_postgresql():
    events = trail(2)
    with pytest.raises(DatabaseError, match="TRUNCATE refused"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE pmrelease_auditevent")
    assert AuditEvent.objects.filter(pk__in=[e.pk for e in events]).count() == 2


@pytest.mark.skipif(not PG, reason="TRUNCATE is PostgreSQL's")
def test_truncate__with_other_tables_in_one_statement__refused():
    trail(1)
    with pytest.raises(DatabaseError, match="TRUNCATE refused"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_session, pmrelease_auditevent")


def test_audit_verify_command__breaks__every_one_printed_with_its_row_exit_nonzero(capsys):
    events = trail(4)
    tamper("UPDATE pmrelease_auditevent SET object_repr = 'x' WHERE id IN (%s, %s)", [events[0].pk, events[2].pk])
    with pytest.raises(CommandError, match="2 break"):
        call_command("audit_verify")
    err = capsys.readouterr().err
    assert f"BROKEN event #{events[0].pk}:" in err and f"BROKEN event #{events[2].pk}:" in err


def test_audit_verify_command__intact__names_the_newest_checkpoint(capsys):
    trail(2)
    checkpoints.write()
    call_command("audit_verify")
    assert "audit chain intact: 2 events; newest checkpoint #1" in capsys.readouterr().out


# --- checkpoints ------------------------------------------------------------------------------------------------
def test_checkpoint_write__grown_trail__appended_signed_sequenced_and_logged(caplog):
    caplog.set_level(logging.INFO, logger="pmrelease.audit")
    events = trail(2)
    first = checkpoints.write()
    assert checkpoints.write() is None  # nothing new: nothing written
    events += trail(1)
    second = checkpoints.write()
    lines = checkpoints.path().read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]
    assert (second.count, second.last_id, second.last_hash, second.prev) == (3, events[-1].pk, events[-1].hash,
                                                                             first.sig)
    assert checkpoints.check_file() == (second, [])
    assert any(second.as_line() in r.getMessage() for r in caplog.records)


def test_checkpoint_write__trail_shrank__nothing_written_error_logged(caplog):
    events = trail(3)
    checkpoints.write()
    tamper("DELETE FROM pmrelease_auditevent WHERE id = %s", [events[-1].pk])
    assert checkpoints.write() is None
    assert len(checkpoints.path().read_text().splitlines()) == 1
    assert "audit trail shrank" in caplog.text


def test_checkpoint_task__in_the_beat_schedule(settings):
    assert settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]["task"] == "pmrelease.tasks.audit_checkpoint"


# --- the key ----------------------------------------------------------------------------------------------------
def test_verify__another_key__every_row_reported(settings):
    events = trail(3)
    settings.AUDIT_KEY = "not the key the rows were written with"
    assert [b.event_id for b in audit.verify().breaks] == [e.pk for e in events]


def test_key__unset_embedded__random_file_0600_kept(settings, tmp_path):
    settings.AUDIT_KEY, settings.EMBEDDED, settings.VAR_DIR = "", True, tmp_path
    first = audit.key()
    assert (tmp_path / "audit.key").stat().st_mode & 0o777 == 0o600
    assert len(first) == 64 and audit.key() == first
    assert settings.SECRET_KEY.encode() not in first


def test_key__unset_with_database_url__derived_from_secret_key(settings, tmp_path):
    settings.AUDIT_KEY, settings.EMBEDDED, settings.VAR_DIR = "", False, tmp_path
    derived = audit.key()
    settings.SECRET_KEY = "another-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
    assert audit.key() != derived and not (tmp_path / "audit.key").exists()
    settings.AUDIT_KEY = "explicit"
    assert audit.key() == b"explicit"
