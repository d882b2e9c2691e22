"""Who signs in from outside the portal's own pages: identities at Microsoft Entra ID, and the
JSON API's bearer tokens."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExternalIdentity(models.Model):
    """A portal user's account at an identity provider: Entra's tenant and object ID.

    Users are found by this pair, never by a name: a UPN can be renamed or reused, an object ID
    cannot. A local account is never taken over by an SSO sign-in with the same name.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="external_identities"
    )
    issuer = models.CharField(max_length=200)
    tenant = models.CharField(max_length=64)
    subject = models.CharField(max_length=64, help_text="Entra's object ID (oid)")
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "subject"], name="one_user_per_external_id")
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer} ({self.subject})"


class ApiToken(models.Model):
    """A bearer token for the JSON API; only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=100, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
