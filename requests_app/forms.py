"""Forms. Each validates its input completely before anything is stored."""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from requests_app.models import AuditEvent


class ThrottledLoginForm(AuthenticationForm):
    """Django's login form, refusing a username or address after repeated failures.

    Failures are counted from the audit trail (shared by every web process), so throttling
    needs no extra store and every refused attempt is itself on record.
    """

    def clean(self):
        username = (self.data.get("username") or "")[:150]
        since = timezone.now() - timedelta(seconds=settings.DSR_LOGIN_LOCKOUT_SECONDS)
        ip = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        recent = AuditEvent.objects.filter(action="login_failed", created_at__gte=since)
        by_name = recent.filter(actor_name=username).count() if username else 0
        by_ip = recent.filter(details__ip=ip).count() if ip else 0
        limit = settings.DSR_LOGIN_MAX_FAILURES
        if by_name >= limit or by_ip >= limit * 4:
            minutes = max(1, settings.DSR_LOGIN_LOCKOUT_SECONDS // 60)
            AuditEvent.record("login_throttled", actor_kind="anonymous", actor_name=username, ip=ip)
            raise forms.ValidationError(
                f"Too many failed sign-in attempts. Try again in {minutes} minutes.",
                code="throttled",
            )
        return super().clean()
