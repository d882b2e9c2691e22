"""Audit events for sign-ins and sign-outs (failed sign-ins: accounts/lockout.py)."""

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from requests_app.accounts.identity import client_of
from requests_app.models import AuditEvent


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    how = getattr(request, "dsr_signin", None) or {"method": "other", "second_factor": "none"}
    AuditEvent.record("login", actor=user, **how, **client_of(request))


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        AuditEvent.record("logout", actor=user, **client_of(request))
