"""A copy of an export handed to the data subject: an expiring, download-limited link
protected by a passphrase the officer sends by a second channel.

Neither the link's token nor the passphrase is stored: only their hashes (SHA-256 of the
token, to find the delivery; Django's password hash of the passphrase). The portal shows both
once, to the officer who made the delivery.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Delivery(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        EXHAUSTED = "exhausted", "Download limit reached"
        REVOKED = "revoked", "Revoked"
        LOCKED = "locked", "Locked after too many wrong passphrases"
        PURGED = "purged", "Archive deleted (retention)"

    request = models.ForeignKey(
        "requests_app.DataRequest", on_delete=models.CASCADE, related_name="deliveries"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    passphrase_hash = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deliveries_made"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    max_downloads = models.PositiveSmallIntegerField()
    downloads = models.PositiveSmallIntegerField(default=0)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deliveries_revoked",
    )
    # Refusals already on the audit trail ("expired", "revoked", ...): each is recorded once.
    refusals_recorded = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"delivery {self.pk} of {self.request_id}"
