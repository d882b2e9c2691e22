"""Approval links: signed, bound to one approver, one request and one plan version, expiring,
and dead once used (a decision for that plan version exists). Nothing secret is stored."""

from django.conf import settings
from django.core import signing

SALT = "dsr.approval-link"


class TokenRefused(Exception):
    """Why a link cannot be used; ``status`` is the HTTP status the page answers with."""

    def __init__(self, reason, message, status):
        super().__init__(message)
        self.reason = reason
        self.status = status


def make_token(data_request, approver):
    payload = {"r": data_request.pk, "a": approver.pk, "v": data_request.plan_version}
    return signing.dumps(payload, salt=SALT, compress=False)


def read_token(token):
    """The payload of a valid, unexpired token, or TokenRefused saying why not."""
    try:
        return signing.loads(token, salt=SALT, max_age=settings.DSR_APPROVAL_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise TokenRefused(
            "expired",
            "This approval link has expired. Ask the privacy officer to resend the approval "
            "emails.",
            410,
        ) from None
    except signing.BadSignature:
        raise TokenRefused(
            "tampered", "This approval link is not valid: it was altered or is incomplete.", 403
        ) from None


def approval_url(data_request, approver):
    from django.urls import reverse

    return settings.SITE_URL + reverse("approval_link", args=[make_token(data_request, approver)])
