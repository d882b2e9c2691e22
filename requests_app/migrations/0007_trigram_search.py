"""On PostgreSQL, trigram indexes for the request list's free-text search (icontains)."""

from django.db import migrations

CREATE = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS dsr_request_reference_trgm
    ON requests_app_datarequest USING gin (UPPER(reference) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS dsr_request_subject_trgm
    ON requests_app_datarequest USING gin (UPPER(subject_reference) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS dsr_identifier_registration_trgm
    ON requests_app_requestidentifier USING gin (UPPER(registration_id) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS dsr_identifier_device_trgm
    ON requests_app_requestidentifier USING gin (UPPER(device_id) gin_trgm_ops);
"""
DROP = """
DROP INDEX IF EXISTS dsr_request_reference_trgm;
DROP INDEX IF EXISTS dsr_request_subject_trgm;
DROP INDEX IF EXISTS dsr_identifier_registration_trgm;
DROP INDEX IF EXISTS dsr_identifier_device_trgm;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("requests_app", "0006_step_claims")]
    operations = [migrations.RunPython(create, drop)]
