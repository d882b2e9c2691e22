"""The register of requests for a period, as CSV rows an auditor can open in a spreadsheet.

One row per request *received* in the period (both ends included), with its regulation's label
and the legal reference its deadline comes from (requests_app.workflow.regulations). Cells that
a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) are prefixed with ``'`` so they stay text.
"""

import csv
import re
from datetime import date

from django.db.models import Prefetch
from django.utils import timezone

from requests_app.dates import iso
from requests_app.models import Approval, DataRequest
from requests_app.models.requests import FINAL_STATUSES

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

HEADER = (
    "reference",
    "kind",
    "regulation",
    "regulation_label",
    "legal_reference",
    "received_via",
    "received",
    "due",
    "extended_until",
    "extension_reason",
    "approved_by",
    "approved_at",
    "completed",
    "outcome",
    "rejection_or_cancellation_reason",
    "days_taken",
    "on_time",
)


class PeriodError(ValueError):
    """The ``from``/``to`` query parameters do not make a period; the message says why."""


def parse_period(params):
    """``(from, to)`` dates from query parameters ``from`` and ``to`` (YYYY-MM-DD, inclusive)."""
    values = []
    for name in ("from", "to"):
        raw = (params.get(name) or "").strip()
        if not raw:
            raise PeriodError(
                f"Missing '{name}': give the period as ?from=YYYY-MM-DD&to=YYYY-MM-DD"
            )
        if not DATE_RE.match(raw):
            raise PeriodError(f"'{name}' must be a date written YYYY-MM-DD")
        try:
            values.append(date.fromisoformat(raw))
        except ValueError:
            raise PeriodError(f"'{name}' is not a real date (YYYY-MM-DD)") from None
    start, end = values
    if start > end:
        raise PeriodError("'from' is after 'to': the period is empty")
    return start, end


def safe_cell(value):
    """Text for one CSV cell, neutralised against formula injection."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def _local_date(moment):
    return timezone.localtime(moment).date() if moment else None


def register_queryset(start, end):
    approved = Approval.objects.filter(decision=Approval.Decision.APPROVED).order_by(
        "created_at", "pk"
    )
    return (
        DataRequest.objects.filter(received_at__gte=start, received_at__lte=end)
        .order_by("received_at", "reference")
        .prefetch_related(Prefetch("approvals", queryset=approved, to_attr="approved_rows"))
    )


def on_time(data_request, completed, today):
    due = data_request.effective_due
    if completed:
        return "yes" if completed <= due else "no"
    return "open, overdue" if today > due else "open"


def register_row(data_request, today):
    completed = (
        _local_date(data_request.completed_at) if data_request.status in FINAL_STATUSES else None
    )
    reason = data_request.rejection_reason or data_request.cancel_reason
    return [
        data_request.reference,
        data_request.kind,
        data_request.regulation,
        data_request.regulation_rules.label,
        data_request.regulation_rules.reference,
        data_request.created_via,
        iso(data_request.received_at, ""),
        iso(data_request.due_at, ""),
        iso(data_request.extended_until, ""),
        data_request.extension_reason,
        ";".join(row.approver_name for row in data_request.approved_rows),
        iso(timezone.localtime(data_request.approved_at), "") if data_request.approved_at else "",
        iso(completed, ""),
        data_request.status,
        reason,
        (completed - data_request.received_at).days if completed else "",
        on_time(data_request, completed, today),
    ]


class Echo:
    """A file-like object whose ``write`` hands back what it was given (for streaming CSV)."""

    def write(self, value):
        return value


def register_lines(start, end, today=None):
    """The CSV, one encoded line at a time: header first, then each request of the period."""
    today = today or timezone.localdate()
    writer = csv.writer(Echo())
    yield writer.writerow(HEADER)
    for data_request in register_queryset(start, end).iterator(chunk_size=500):
        yield writer.writerow([safe_cell(value) for value in register_row(data_request, today)])
