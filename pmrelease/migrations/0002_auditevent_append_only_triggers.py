"""Database-level protection of the audit trail: UPDATE (and on PostgreSQL DELETE) of a row is refused.

PostgreSQL: row triggers refuse UPDATE and DELETE (TRUNCATE, an operator-level action outside the product,
stays possible so test databases can be flushed). SQLite: a trigger refuses UPDATE.
"""
from django.db import migrations

PG_UP = """
CREATE OR REPLACE FUNCTION pmrelease_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION USING MESSAGE = 'audit events are append-only (' || TG_OP || ' refused)';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER pmrelease_auditevent_no_update BEFORE UPDATE ON pmrelease_auditevent
  FOR EACH ROW EXECUTE FUNCTION pmrelease_audit_append_only();
CREATE TRIGGER pmrelease_auditevent_no_delete BEFORE DELETE ON pmrelease_auditevent
  FOR EACH ROW EXECUTE FUNCTION pmrelease_audit_append_only();
"""
PG_DOWN = """
DROP TRIGGER IF EXISTS pmrelease_auditevent_no_update ON pmrelease_auditevent;
DROP TRIGGER IF EXISTS pmrelease_auditevent_no_delete ON pmrelease_auditevent;
DROP FUNCTION IF EXISTS pmrelease_audit_append_only();
"""
SQLITE_UP = """
CREATE TRIGGER IF NOT EXISTS pmrelease_auditevent_no_update BEFORE UPDATE ON pmrelease_auditevent
BEGIN SELECT RAISE(ABORT, 'audit events are append-only (UPDATE refused)'); END;
"""
SQLITE_DOWN = "DROP TRIGGER IF EXISTS pmrelease_auditevent_no_update;"


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_UP)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_UP)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_DOWN)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_DOWN)


class Migration(migrations.Migration):
    dependencies = [("pmrelease", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
