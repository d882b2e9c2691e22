"""One lockout for every door, kept by django-axes.

Every sign-in door reports a failure the same way, through Django's ``user_login_failed``
signal with the (normalised) username: the password form (Django's ``authenticate`` does it),
the second-factor step, password reset requests and API token authentication
(``count_failure`` below). django-axes counts them per username and per client address and
refuses every door while either is locked out (``is_locked``).

Two limits: ``DSR_LOGIN_MAX_FAILURES`` per account (default 5) and
``DSR_LOGIN_MAX_FAILURES_PER_IP`` per client address (default 20: one office behind one NAT
address must not lock itself out as fast as one account). django-axes has one limit, so the
handler scales the address's count to it.

The audit trail gets one ``login_locked_out`` event per lockout (not one per refused attempt).
"""

from datetime import timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db.models import Sum
from django.dispatch import receiver
from django.utils import timezone

from requests_app.accounts import noise
from requests_app.accounts.identity import client_ip, normalise_username
from requests_app.models import AuditEvent


class LockoutHandler(AxesDatabaseHandler):
    """django-axes' database handler with a separate, larger limit per client address."""

    def get_failures(self, request, credentials=None):
        by_user, by_address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        scaled = (
            by_address * settings.DSR_LOGIN_MAX_FAILURES // settings.DSR_LOGIN_MAX_FAILURES_PER_IP
        )
        return max(by_user, scaled)

    def reset_user_attempts(self, request, credentials=None):
        """On a successful sign-in forget that account's failures only. django-axes would
        also delete every failure counted against the address, so an attacker could reset
        their guessing budget by signing in to their own account between guesses."""
        from axes.models import AccessAttempt

        username = normalise_username((credentials or {}).get("username"))
        deleted, _ = AccessAttempt.objects.filter(username=username).delete()
        return deleted


def credentials_for(username):
    return {"username": normalise_username(username)}


def is_locked(request, username):
    """Whether ``username`` or this client's address is locked out right now."""
    return not AxesProxyHandler.is_allowed(request, credentials_for(username))


def count_failure(request, username, door):
    """Report a failed attempt at a door other than the password form (second factor, reset,
    API token): counted by django-axes like a wrong password, audited like one."""
    request.dsr_door = door
    user_login_failed.send(sender=__name__, credentials=credentials_for(username), request=request)


def lockout_minutes():
    return max(1, settings.DSR_LOGIN_LOCKOUT_SECONDS // 60)


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs):
    """One event per failed attempt (a password reset request is counted like one and audited
    as ``password_reset_requested``) until the lockout; none for attempts refused during it
    (django-axes flags those on the request), so refused traffic cannot grow the trail."""
    if request is not None and getattr(request, "axes_locked_out", False):
        return
    door = getattr(request, "dsr_door", "password") if request is not None else "password"
    noise.record_anonymous(
        "password_reset_requested" if door == "password_reset" else "login_failed",
        actor_name=normalise_username(credentials.get("username")) or "unknown",
        ip=client_ip(request) if request is not None else "",
        door=door,
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300] if request is not None else "",
    )


@receiver(user_locked_out)
def audit_lockout(sender, request, username, ip_address, **kwargs):
    """``login_locked_out`` once per lockout of this username and address."""
    since = timezone.now() - timedelta(seconds=settings.DSR_LOGIN_LOCKOUT_SECONDS)
    name = normalise_username(username) or "unknown"
    already = AuditEvent.objects.filter(
        action="login_locked_out", actor_name=name, details__ip=ip_address, created_at__gte=since
    ).exists()
    if not already:
        noise.record_anonymous(
            "login_locked_out",
            actor_name=name,
            ip=ip_address,
            door=getattr(request, "dsr_door", "password"),
            minutes=lockout_minutes(),
        )
