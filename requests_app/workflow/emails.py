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

    from requests_app.models import Approval, DataRequest

log = logging.getLogger(__name__)


def _send(
    template: str,
    subject: str,
    recipient: str,
    context: dict[str, Any],
    data_request: DataRequest | None = None,
) -> bool:
    context = {**context, "site_url": settings.SITE_URL, "request": data_request}
    text = render_to_string(f"emails/{template}.txt", context)
    html = render_to_string(f"emails/{template}.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [recipient])
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except Exception as exc:  # SMTP answers vary; all of them mean "not sent"
        log.warning("email %s to %s failed: %s", template, recipient, exc)
        AuditEvent.record(
            "email_failed",
            request=data_request,
            template=template,
            to=recipient,
            error=exc.__class__.__name__,
        )
        return False
    AuditEvent.record("email_sent", request=data_request, template=template, to=recipient)
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


def deadline_digest(officer: User, requests: Sequence[DataRequest]) -> bool:
    return _send(
        "deadline_digest",
        f"DSR Portal: {len(requests)} requests due within 7 days or overdue",
        officer.email,
        {"officer": officer, "requests": requests},
    )
