"""Audit events for logins, logouts and failed logins."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from requests_app.models import AuditEvent


def client_of(request):
    if request is None:
        return {}
    return {
        "ip": request.META.get("REMOTE_ADDR", ""),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300],
    }


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    AuditEvent.record("login", actor=user, **client_of(request))


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        AuditEvent.record("logout", actor=user, **client_of(request))


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    AuditEvent.record(
        "login_failed", actor_kind="anonymous", actor_name=username, **client_of(request)
    )
