"""Every email the portal sends: one function each, text + HTML templates, absolute URLs from
SITE_URL. Each send is an audit event; a failure is recorded and can be resent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from requests_app.models import AuditEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from requests_app.models import Approval, DataRequest, Delivery

log = logging.getLogger(__name__)


def _send(
    template: str,
    subject: str,
    recipient: str,
    context: dict[str, Any],
    data_request: DataRequest | None = None,
    audit_to: str | None = None,
) -> bool:
    """Send one email; the audit event names ``audit_to`` (e.g. a masked address) when given,
    else the recipient."""
    context = {**context, "site_url": settings.SITE_URL, "request": data_request}
    text = render_to_string(f"emails/{template}.txt", context)
    html = render_to_string(f"emails/{template}.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [recipient])
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except Exception as exc:  # SMTP answers vary; all of them mean "not sent"
        log.warning("email %s to %s failed: %s", template, audit_to or recipient, exc)
        AuditEvent.record(
            "email_failed",
            request=data_request,
            template=template,
            to=audit_to or recipient,
            error=exc.__class__.__name__,
        )
        return False
    AuditEvent.record(
        "email_sent", request=data_request, template=template, to=audit_to or recipient
    )
    return True


def approval_requested(
    data_request: DataRequest, approver: User, url: str, reminder: bool = False
) -> bool:
    prefix = "Reminder: approval" if reminder else "Approval"
    return _send(
        "approval_request",
        f"[{data_request.reference}] {prefix} needed: {data_request.get_kind_display()}",
        approver.email,
        {
            "approver": approver,
            "url": url,
            "devices": data_request.devices.all(),
            "operations_count": data_request.operations.count(),
        },
        data_request,
    )


def request_rejected(data_request: DataRequest, approval: Approval) -> bool:
    return _send(
        "request_rejected",
        f"[{data_request.reference}] Rejected by {approval.approver_name}",
        data_request.created_by.email,
        {"approval": approval},
        data_request,
    )


def request_finished(data_request: DataRequest) -> bool:
    return _send(
        "request_finished",
        f"[{data_request.reference}] {data_request.get_status_display()}",
        data_request.created_by.email,
        {"url": settings.SITE_URL + data_request.get_absolute_url()},
        data_request,
    )


def masked(address: str) -> str:
    """``j***@example.com``: enough to tell addresses apart on the audit trail, not to keep a
    data subject's address there for years."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def delivery_link(data_request: DataRequest, recipient: str, url: str, delivery: Delivery) -> bool:
    """The link to the subject's copy. Never the passphrase: that goes by another channel."""
    return _send(
        "delivery_link",
        "Your data: a copy is ready to download",
        recipient,
        {"url": url, "delivery": delivery},
        data_request,
        audit_to=masked(recipient),
    )


def deadline_digest(officer: User, requests: Sequence[DataRequest]) -> bool:
    return _send(
        "deadline_digest",
        f"DSR Portal: {len(requests)} requests due within 7 days or overdue",
        officer.email,
        {"officer": officer, "requests": requests},
    )
