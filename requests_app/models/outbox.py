"""Mail kept in the database in dev mode (DSR_DEV_OUTBOX), shown at /dev/outbox/."""

from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    subject = models.CharField(max_length=300)
    from_email = models.CharField(max_length=300)
    to = models.TextField(help_text="Recipients, one per line")
    text = models.TextField()
    html = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.subject
