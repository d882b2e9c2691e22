"""Approval links: signed, bound to one approver, one request and one plan version, expiring,
and dead once used (a decision for that plan version exists). Nothing secret is stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import signing

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from requests_app.models import DataRequest

SALT = "dsr.approval-link"


class TokenRefused(Exception):
    """Why a link cannot be used; ``status`` is the HTTP status the page answers with."""

    def __init__(self, reason: str, message: str, status: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def make_token(data_request: DataRequest, approver: User) -> str:
    payload = {"r": data_request.pk, "a": approver.pk, "v": data_request.plan_version}
    return signing.dumps(payload, salt=SALT, compress=False)


def read_token(token: str) -> dict[str, Any]:
    """The payload of a valid, unexpired token, or TokenRefused saying why not."""
    try:
        payload: dict[str, Any] = signing.loads(
            token, salt=SALT, max_age=settings.DSR_APPROVAL_LINK_MAX_AGE
        )
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
    return payload


def approval_url(data_request: DataRequest, approver: User) -> str:
    from django.urls import reverse

    return settings.SITE_URL + reverse("approval_link", args=[make_token(data_request, approver)])
