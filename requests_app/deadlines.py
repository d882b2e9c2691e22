"""Deadline extensions: once per request, within the regulation's limit, with a recorded reason
and the date the data subject was told (GDPR art. 12(3), CCPA §1798.130(a)(2))."""

from django.db import transaction
from django.utils import timezone

from requests_app.models import AuditEvent, DataRequest
from requests_app.models.requests import latest_extension


def extension_limit(request):
    """The furthest date an extension of ``request`` may reach."""
    return latest_extension(request.regulation, request.due_at)


def _refusal(request, until, reason, notice_date, today):
    """Why this extension is not allowed, in words for the officer; None when it is."""
    if not request.is_open:
        status = request.get_status_display().lower()
        return f"{request.reference} is {status}; only open requests can be extended."
    if request.extended_until:
        return (
            f"{request.reference} was already extended to {request.extended_until:%Y-%m-%d}; "
            "a deadline can be extended only once."
        )
    if not reason:
        return "A reason for the extension is required."
    if until is None:
        return "Give the new due date."
    if until <= request.effective_due:
        return f"The new due date must be after the current one ({request.effective_due:%Y-%m-%d})."
    limit = extension_limit(request)
    if until > limit:
        return (
            f"{request.get_regulation_display()} allows an extension up to {limit:%Y-%m-%d} "
            f"for {request.reference}."
        )
    if notice_date is None:
        return "Give the date the data subject was told of the extension."
    if notice_date > today:
        return "The date the data subject was told cannot be in the future."
    if notice_date < request.received_at:
        return "The data subject cannot have been told before the request was received."
    if notice_date > request.due_at:
        # Both regulations require the notice within the original period.
        return (
            f"The data subject must be told before the original due date "
            f"({request.due_at:%Y-%m-%d}); an extension cannot be claimed afterwards."
        )
    return None


def extend(request, *, actor, until, reason, notice_date, today=None):
    """Move the due date of ``request`` to ``until``; raise ``ValueError`` (storing nothing) if
    the extension is not allowed. Checked under a row lock so two officers cannot both extend."""
    reason = (reason or "").strip()
    today = today or timezone.localdate()
    with transaction.atomic():
        current = DataRequest.objects.select_for_update().get(pk=request.pk)
        problem = _refusal(current, until, reason, notice_date, today)
        if problem:
            raise ValueError(problem)
        fields = {
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
        setattr(request, name, value)
    return request
