"""On PostgreSQL, refuse UPDATE and DELETE of audit events in the database itself."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION dsr_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS dsr_audit_append_only ON requests_app_auditevent;
CREATE TRIGGER dsr_audit_append_only BEFORE UPDATE OR DELETE ON requests_app_auditevent
    FOR EACH ROW EXECUTE FUNCTION dsr_audit_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS dsr_audit_append_only ON requests_app_auditevent;
DROP FUNCTION IF EXISTS dsr_audit_append_only();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("requests_app", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
