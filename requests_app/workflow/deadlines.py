"""Deadline extensions, by the rule of the request's regulation (workflow.regulations): how
often, how far beyond the original due date, and what is recorded (a reason, the date the data
subject was told, which must fall within the original period)."""

from django.db import transaction
from django.utils import timezone

from requests_app.models import AuditEvent, DataRequest
from requests_app.workflow import regulations


def extension_limit(request):
    """The furthest date an extension of ``request`` may reach."""
    return regulations.latest_extension(request.regulation, request.due_at)


def _extensions_made(request):
    if not request.extended_until:
        return 0
    # Each extension writes one audit event in its transaction: the trail counts them.
    events = AuditEvent.objects.filter(request_ref=request.reference, action="deadline_extended")
    return max(1, events.count())


def _how_often(rules):
    if rules.extension.times == 1:
        return "only once"
    return f"at most {rules.extension.times} times"


def _refusal(request, until, reason, notice_date, today):
    """Why this extension is not allowed, in words for the officer; None when it is."""
    if not request.is_open:
        status = request.get_status_display().lower()
        return f"{request.reference} is {status}; only open requests can be extended."
    rules = request.regulation_rules
    if not rules.extension.times:
        return f"{rules.label} allows no extension of the deadline ({rules.reference})."
    if _extensions_made(request) >= rules.extension.times:
        return (
            f"{request.reference} was already extended to {request.extended_until:%Y-%m-%d}; "
            f"under {rules.label} a deadline can be extended {_how_often(rules)}."
        )
    if not reason and "reason" in rules.extension.records:
        return "A reason for the extension is required."
    if until is None:
        return "Give the new due date."
    if until <= request.effective_due:
        return f"The new due date must be after the current one ({request.effective_due:%Y-%m-%d})."
    limit = extension_limit(request)
    if until > limit:
        return (
            f"{rules.label} allows an extension up to {limit:%Y-%m-%d} "
            f"for {request.reference} ({rules.reference})."
        )
    if notice_date is None:
        if "notice_date" in rules.extension.records:
            return "Give the date the data subject was told of the extension."
        return None
    if notice_date > today:
        return "The date the data subject was told cannot be in the future."
    if notice_date < request.received_at:
        return "The data subject cannot have been told before the request was received."
    if notice_date > request.due_at:
        # The regulations require the notice within the original period.
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
