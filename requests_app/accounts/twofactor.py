"""Second factors and what a signed-in session can prove.

Sign-in is two steps. The password step (``views.PasswordStep``) does not sign anyone in: it
parks the user in the session as *pending*; the code step (a 6-digit TOTP code or a recovery
code, posted as ``otp_token``) or, the first time, the enrolment step completes the sign-in.
A session is therefore never signed in with half a sign-in. Entra ID users whose token says
the second factor was done (``amr``, see ``sso``) are signed in with it.

Who must have a second factor: ``DSR_REQUIRE_2FA`` (roles, or ``all`` / ``none``; default
approvers and admins). Whatever it says, a decision on a request needs one (``proof_of``).

Devices are django-otp's: TOTPDevice (an authenticator app) and StaticDevice (ten single-use
recovery codes, shown once).
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import segno
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.db import transaction
from django_otp import devices_for_user, user_has_device
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from requests_app.access import roles
from requests_app.models import AuditEvent

PENDING = "dsr_pending_signin"
SIGNED_IN_AT = "dsr_signed_in_at"
SECOND_FACTOR = "dsr_second_factor"
PENDING_SECONDS = 300
RECOVERY_CODES = 10


def second_factor_required(user):
    wanted = {r.strip().lower() for r in settings.DSR_REQUIRE_2FA}
    if "none" in wanted:
        return False
    if "all" in wanted:
        return True
    return any(roles.has_role(user, role) for role in wanted)


def has_second_factor(user):
    return user_has_device(user, confirmed=True)


# -- the pending sign-in (between the password and the code) ------------------------------


def begin(request, user, next_url):
    """Park ``user`` (who gave the right password) until the second step, in a session with
    a new key (a session planted before the password must not inherit the pending sign-in)."""
    request.session.cycle_key()
    request.session[PENDING] = {
        "user": user.pk,
        "backend": getattr(user, "backend", settings.AUTHENTICATION_BACKENDS[-1]),
        "at": time.time(),
        "next": next_url,
    }


def pending(request):
    """(user, next_url) of the sign-in waiting for its second step, or (None, "")."""
    data = request.session.get(PENDING)
    if not data or time.time() - data.get("at", 0) > PENDING_SECONDS:
        request.session.pop(PENDING, None)
        return None, ""
    user = get_user_model().objects.filter(pk=data["user"], is_active=True).first()
    return user, data.get("next", "")


def complete(
    request, user, second_factor, *, device=None, backend=None, method="password", at=None
):
    """Sign ``user`` in, with the second factor (a label) this session can show later, and
    when they authenticated (``at``, epoch seconds; default now)."""
    data = request.session.pop(PENDING, None) or {}
    request.dsr_signin = {"method": method, "second_factor": second_factor or "none"}
    auth_login(request, user, backend=backend or data.get("backend"))
    if device is not None:
        otp_login(request, device)
    request.session[SECOND_FACTOR] = second_factor or ""
    request.session[SIGNED_IN_AT] = min(at or time.time(), time.time())


def reauthenticated(request, second_factor, at=None):
    request.session[SIGNED_IN_AT] = min(at or time.time(), time.time())
    if second_factor:
        request.session[SECOND_FACTOR] = second_factor
    AuditEvent.record("reauthenticated", actor=request.user, second_factor=second_factor)


def verify(user, token):
    """(device, label, wait_seconds): the device that accepted ``token`` (TOTP code or
    recovery code), or None with how long django-otp's throttle wants the user to wait."""
    token = "".join((token or "").split()).lower()
    wait = 0
    if not token:
        return None, "", 0
    with transaction.atomic():
        for device in devices_for_user(user, for_verify=True):
            allowed, info = device.verify_is_allowed()
            if not allowed:
                until = (info or {}).get("locked_until")
                wait = max(
                    wait, int((until - datetime.now(UTC)).total_seconds()) + 1 if until else 1
                )
                continue
            if device.verify_token(token):
                label = "totp" if isinstance(device, TOTPDevice) else "recovery code"
                return device, label, 0
    return None, "", wait


# -- enrolment --------------------------------------------------------------------------------


def enrolment_device(user):
    """The user's unconfirmed TOTP device, made if there is none (the QR code's secret)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def qr_data_uri(device):
    return segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2)


def confirm_enrolment(user, device, token):
    """Confirm ``device`` with its first code; replace any old second factors. Returns the new
    recovery codes (shown once), or None when the code is wrong."""
    if not device.verify_token("".join((token or "").split())):
        return None
    from requests_app.accounts.changes import acting

    # The person enrolling did it (during the first sign-in they are not signed in yet).
    with transaction.atomic(), acting(user):
        for old in devices_for_user(user, confirmed=None):
            if isinstance(old, TOTPDevice) and old.pk != device.pk:
                old.delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = new_recovery_codes(user)  # the enrolment is recorded by accounts.changes
    return codes


def new_recovery_codes(user):
    """Ten new codes replacing the old ones. The device is kept (a session verified with a
    recovery code stays verified), only its codes change."""
    static, _ = StaticDevice.objects.get_or_create(
        user=user, defaults={"name": "Recovery codes", "confirmed": True}
    )
    StaticToken.objects.filter(device=static).delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=static, token=c) for c in codes)
    return codes


def enrol_totp(user):
    """Headless enrolment (``manage.py add_user --totp``): a confirmed device, its URI."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    return device


# -- what a session proves ---------------------------------------------------------------------


@dataclass(frozen=True)
class SignInProof:
    """What this session shows about its user: a decision records it."""

    user_id: int
    second_factor: str  # "totp", "recovery code", "entra mfa", or "" for none
    signed_in_at: float  # epoch seconds of the sign-in or the latest re-authentication

    def age(self, now=None):
        return (now or time.time()) - self.signed_in_at


def proof_of(request):
    """The proof of the request's session, or None when nobody is signed in."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    factor = request.session.get(SECOND_FACTOR, "")
    if factor in ("totp", "recovery code") and not user.is_verified():
        factor = ""  # the device was removed since: django-otp no longer vouches for it
    return SignInProof(user.pk, factor, float(request.session.get(SIGNED_IN_AT, 0)))
