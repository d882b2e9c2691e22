"""Regulations come from the table in requests_app.workflow.regulations: the field's choices
are read from it (a new entry needs no migration) and codes may be up to 16 characters."""

from django.db import migrations, models

import requests_app.workflow.regulations


class Migration(migrations.Migration):
    dependencies = [
        ("requests_app", "0009_audit_evidence"),
    ]

    operations = [
        migrations.AlterField(
            model_name="datarequest",
            name="regulation",
            field=models.CharField(
                choices=requests_app.workflow.regulations.choices, max_length=16
            ),
        ),
    ]
