"""The keyed chain: a hash scheme per row (existing rows keep scheme 1, verified with the function that wrote
them), and TRUNCATE of the audit table refused on PostgreSQL.

PostgreSQL: a statement-level trigger refuses TRUNCATE unless the session has set
``pmrelease.audit_truncate`` to ``allow``; nothing in the product sets it (only the test suite, around the
flush of ``transaction=True`` tests, tests/conftest.py). SQLite has no TRUNCATE; adding the column rebuilds
the table there, so its UPDATE trigger is created again.
"""
import importlib

from django.db import migrations, models

# The UPDATE trigger of SQLite, as 0002 created it (adding a column rebuilds the table there, dropping it).
SQLITE_UP = importlib.import_module("pmrelease.migrations.0002_auditevent_append_only_triggers").SQLITE_UP

PG_UP = """
CREATE OR REPLACE FUNCTION pmrelease_audit_no_truncate() RETURNS trigger AS $$
BEGIN
  IF coalesce(current_setting('pmrelease.audit_truncate', true), '') = 'allow' THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION USING MESSAGE = 'audit events are append-only (TRUNCATE refused)';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER pmrelease_auditevent_no_truncate BEFORE TRUNCATE ON pmrelease_auditevent
  FOR EACH STATEMENT EXECUTE FUNCTION pmrelease_audit_no_truncate();
"""
PG_DOWN = """
DROP TRIGGER IF EXISTS pmrelease_auditevent_no_truncate ON pmrelease_auditevent;
DROP FUNCTION IF EXISTS pmrelease_audit_no_truncate();
"""


def forwards(apps, schema_editor):
    sql = {"postgresql": PG_UP, "sqlite": SQLITE_UP}.get(schema_editor.connection.vendor)
    if sql:
        schema_editor.execute(sql)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_DOWN)


class Migration(migrations.Migration):
    dependencies = [("pmrelease", "0002_auditevent_append_only_triggers")]
    operations = [
        migrations.AddField(model_name="auditevent", name="scheme", field=models.PositiveSmallIntegerField(default=1)),
        migrations.RunPython(forwards, backwards),
    ]
