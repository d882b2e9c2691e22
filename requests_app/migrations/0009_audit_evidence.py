"""Evidence that survives the database's owner.

- ``AuditEvent.actor_user`` stops being a foreign key: its ``SET_NULL`` rewrote audit rows when
  a user was deleted. The column ``actor_user_id`` stays, with its values and index, as a plain
  integer: the event's hash already covers it, so existing chains still verify.
- ``AuditHead`` goes: a mutable row whose removal or reset hid a cut tail. Appends lock with a
  PostgreSQL advisory lock and read the previous hash from the last event.
- Signed checkpoints (the database's copy) and their deliveries to the outside sinks. On
  PostgreSQL the checkpoints get the same append-only trigger as the events (0002).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

CHECKPOINT_TRIGGER = """
DROP TRIGGER IF EXISTS dsr_audit_append_only ON requests_app_auditcheckpoint;
CREATE TRIGGER dsr_audit_append_only BEFORE UPDATE OR DELETE ON requests_app_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION dsr_audit_append_only();
"""
DROP_CHECKPOINT_TRIGGER = """
DROP TRIGGER IF EXISTS dsr_audit_append_only ON requests_app_auditcheckpoint;
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CHECKPOINT_TRIGGER, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_CHECKPOINT_TRIGGER, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("requests_app", "0008_signin"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # In the database: drop the foreign-key constraint; the column (integer, like
        # auth_user.id) and its index stay.
        migrations.AlterField(
            model_name="auditevent",
            name="actor_user",
            field=models.ForeignKey(
                blank=True,
                null=True,
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        # In Django's state: the same column, now a plain integer field of that name.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="auditevent", name="actor_user"),
                migrations.AddField(
                    model_name="auditevent",
                    name="actor_user_id",
                    field=models.IntegerField(blank=True, db_index=True, null=True),
                ),
            ],
        ),
        migrations.DeleteModel(name="AuditHead"),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seq", models.BigIntegerField(unique=True)),
                ("head_hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField()),
                ("body", models.TextField(help_text="The canonical JSON that was signed")),
                (
                    "signature",
                    models.CharField(help_text="Ed25519 over body, base64", max_length=100),
                ),
            ],
            options={"ordering": ["seq"]},
        ),
        migrations.CreateModel(
            name="CheckpointDelivery",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "sink",
                    models.CharField(
                        choices=[
                            ("directory", "Checkpoint directory"),
                            ("email", "Email to the auditors"),
                            ("webhook", "Webhook"),
                        ],
                        max_length=16,
                    ),
                ),
                ("delivered_at", models.DateTimeField(blank=True, null=True)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("last_error", models.CharField(blank=True, max_length=300)),
                ("next_attempt_at", models.DateTimeField(db_index=True)),
                (
                    "checkpoint",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="deliveries",
                        to="requests_app.auditcheckpoint",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("checkpoint", "sink"), name="one_delivery_per_sink"
                    )
                ]
            },
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
