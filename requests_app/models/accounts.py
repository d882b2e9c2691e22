"""Sign-in identities from outside the portal (Microsoft Entra ID)."""

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

    def __str__(self):
        return f"{self.user} at {self.issuer} ({self.subject})"
