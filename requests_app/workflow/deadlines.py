"""Deadline extensions, by the rule of the request's regulation (workflow.regulations): how
often, how far beyond the original due date, and what is recorded (a reason, the date the data
subject was told, which must fall within the original period)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from requests_app.models import AuditEvent, DataRequest
from requests_app.workflow import regulations

if TYPE_CHECKING:
    from requests_app.models.audit import Actor


def extension_limit(data_request: DataRequest) -> date:
    """The furthest date an extension of ``request`` may reach."""
    return regulations.latest_extension(data_request.regulation, data_request.due_at)


def _extensions_made(data_request: DataRequest) -> int:
    if not data_request.extended_until:
        return 0
    # Each extension writes one audit event in its transaction: the trail counts them.
    events = AuditEvent.objects.filter(
        request_ref=data_request.reference, action="deadline_extended"
    )
    return max(1, events.count())


def _how_often(rules: regulations.Rules) -> str:
    if rules.extension.times == 1:
        return "only once"
    return f"at most {rules.extension.times} times"


def _refusal(
    data_request: DataRequest,
    until: date | None,
    reason: str,
    notice_date: date | None,
    today: date,
) -> str | None:
    """Why this extension is not allowed, in words for the officer; None when it is."""
    if not data_request.is_open:
        status = data_request.get_status_display().lower()
        return f"{data_request.reference} is {status}; only open requests can be extended."
    rules = data_request.regulation_rules
    if not rules.extension.times:
        return f"{rules.label} allows no extension of the deadline ({rules.reference})."
    if _extensions_made(data_request) >= rules.extension.times:
        return (
            f"{data_request.reference} was already extended to "
            f"{data_request.extended_until:%Y-%m-%d}; under {rules.label} a deadline can be "
            f"extended {_how_often(rules)}."
        )
    if not reason and "reason" in rules.extension.records:
        return "A reason for the extension is required."
    if until is None:
        return "Give the new due date."
    if until <= data_request.effective_due:
        current = f"{data_request.effective_due:%Y-%m-%d}"
        return f"The new due date must be after the current one ({current})."
    limit = extension_limit(data_request)
    if until > limit:
        return (
            f"{rules.label} allows an extension up to {limit:%Y-%m-%d} "
            f"for {data_request.reference} ({rules.reference})."
        )
    if notice_date is None:
        if "notice_date" in rules.extension.records:
            return "Give the date the data subject was told of the extension."
        return None
    if notice_date > today:
        return "The date the data subject was told cannot be in the future."
    if notice_date < data_request.received_at:
        return "The data subject cannot have been told before the request was received."
    if notice_date > data_request.due_at:
        # The regulations require the notice within the original period.
        return (
            f"The data subject must be told before the original due date "
            f"({data_request.due_at:%Y-%m-%d}); an extension cannot be claimed afterwards."
        )
    return None


def extend(
    data_request: DataRequest,
    *,
    actor: Actor,
    until: date | None,
    reason: str | None,
    notice_date: date | None,
    today: date | None = None,
) -> DataRequest:
    """Move the due date of ``request`` to ``until``; raise ``ValueError`` (storing nothing) if
    the extension is not allowed. Checked under a row lock so two officers cannot both extend."""
    reason = (reason or "").strip()
    today = today or timezone.localdate()
    with transaction.atomic():
        current = DataRequest.objects.select_for_update().get(pk=data_request.pk)
        problem = _refusal(current, until, reason, notice_date, today)
        if problem:
            raise ValueError(problem)
        fields: dict[str, Any] = {
            "extended_until": until,
            "extension_reason": reason,
            "extension_notice_date": notice_date,
            "updated_at": timezone.now(),
        }
        DataRequest.objects.filter(pk=current.pk).update(**fields)
        AuditEvent.record(
            "deadline_extended",
            actor=actor,
            request=current,
            from_=current.due_at,
            until=until,
            reason=reason,
            notice_date=notice_date,
        )
    for name, value in fields.items():
        setattr(data_request, name, value)
    return data_request
