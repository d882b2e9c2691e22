"""Keeping and forgetting: a legal hold suspends the purge of a request's files.

What is purged when is ``requests_app/evidence/retention.py``; a purged file keeps its row
(kind, SHA-256, size) with ``Artifact.purged_at`` and the rule that purged it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LegalHold(models.Model):
    """While this row exists nothing of the request is purged. Placing and releasing it are
    audited with their reasons; the row itself goes when the hold is released."""

    request = models.OneToOneField(
        "requests_app.DataRequest", on_delete=models.CASCADE, related_name="legal_hold"
    )
    reason = models.TextField()
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="legal_holds"
    )
    placed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"legal hold on {self.request_id}"
