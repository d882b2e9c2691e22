"""The request's history as the data subject may see it: ``history.json`` in the export archive.

The audit trail records who did what and from where (staff names, email addresses, IP
addresses, browser user agents, free-text reasons); it stays in the portal for auditors. The
data subject gets a view built from an allow-list: ``EVENTS`` names each kind of audit event
that appears and builds its entry from the fields it may carry, and per-device steps come from
the operations' outcomes. Anything not listed (emails sent, sign-ins, downloads, Azure call
details, error messages, reasons) is left out, so a new kind of event never leaks by default.

Approvers appear as "Approver 1", "Approver 2", numbered in the order they decided.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from requests_app.dates import day
from requests_app.jobs.operations import operation_name
from requests_app.models import Approval, AuditEvent, DataRequest, Operation, Status

FORMAT = "dsr-portal request history, version 1"
ABOUT = (
    "What was done for this request and when, up to the time this archive was generated. "
    "Staff are not named: approvers appear as Approver 1, Approver 2, in the order they "
    "decided. The organisation keeps the complete audit trail for its auditors."
)

# One entry of the history, and what builds one from an audit event (None: left out).
Entry = dict[str, object]
Builder = Callable[[AuditEvent, dict[int, str]], Entry | None]

# Operation outcomes in words (Operation.State); the operation's name says what it was.
OUTCOMES: dict[str, str] = {
    Operation.State.DONE: "done",
    Operation.State.ALREADY_ABSENT: "not present: nothing to do",
    Operation.State.SKIPPED: "not run: the target is not configured in the portal",
    Operation.State.FAILED: "failed",
}

# The status changes the subject is told about, as (event, sentence).
STATUSES: dict[str, tuple[str, str]] = {
    Status.AWAITING_APPROVAL: ("planned", "The plan was made: what will be done, per device."),
    Status.APPROVED: ("approved", "The request was approved."),
    Status.RUNNING: ("fulfilment_started", "Fulfilment started."),
    Status.FAILED: ("fulfilment_interrupted", "Fulfilment stopped on an error."),
    Status.COMPLETED: ("completed", "The request was completed."),
    Status.COMPLETED_WITH_ISSUES: (
        "completed_with_issues",
        "The request was completed; some devices need to be handled by hand.",
    ),
    Status.REJECTED: ("rejected", "The request was rejected."),
    Status.CANCELLED: ("cancelled", "The request was cancelled."),
}


def approver_numbers(data_request: DataRequest) -> dict[int, str]:
    """``{approver user id: "Approver N"}``, numbered by each approver's first decision."""
    numbers: dict[int, str] = {}
    rows = Approval.objects.filter(request=data_request).order_by("created_at", "pk")
    for approver_id in rows.values_list("approver_id", flat=True):
        numbers.setdefault(approver_id, f"Approver {len(numbers) + 1}")
    return numbers


def subject_approvals(data_request: DataRequest) -> list[dict[str, str | None]]:
    """The approvals as the subject sees them: pseudonym and time, nothing else."""
    numbers = approver_numbers(data_request)
    rows = Approval.objects.filter(request=data_request, decision=Approval.Decision.APPROVED)
    return [
        {"approver": numbers[row.approver_id], "time": _time(row.created_at)}
        for row in rows.order_by("created_at", "pk")
    ]


def history(data_request: DataRequest, generated: datetime) -> dict[str, object]:
    """The whole document; ``events`` is an iterator, for ``json_stream.json_chunks`` to stream."""
    return {
        "format": FORMAT,
        "request": data_request.reference,
        "generated": _time(generated),
        "about": ABOUT,
        "events": events(data_request),
    }


def events(data_request: DataRequest) -> Iterator[dict[str, object]]:
    """Every entry, oldest first: the date received, then the request's allow-listed audit
    events merged by time with the devices' finished operations."""
    yield {
        "date": data_request.received_at.isoformat(),
        "event": "received",
        "description": "The request was received.",
    }
    merged = heapq.merge(
        _request_events(data_request), _operation_events(data_request), key=lambda pair: pair[0]
    )
    for when, entry in merged:
        yield {"time": _time(when), **entry}


# --- the allow-list --------------------------------------------------------------------------
def _status_changed(event: AuditEvent, numbers: dict[int, str]) -> Entry | None:
    to = event.details.get("to")
    if to not in STATUSES:
        return None
    name, sentence = STATUSES[to]
    entry: Entry = {"event": name, "description": sentence}
    if to == Status.APPROVED and event.details.get("retry") is True:
        entry = {"event": "retry_approved", "description": "Fulfilment was set to resume."}
    if to == Status.AWAITING_APPROVAL:
        entry.update(_counts(event.details, "devices", "operations"))
    return entry


def _decision(verb: str) -> Builder:
    def build(event: AuditEvent, numbers: dict[int, str]) -> Entry | None:
        user_id = event.actor_user_id
        approver = numbers.get(user_id) if user_id is not None else None
        if approver is None:
            return None  # not a decision on this request's approvals: leave it out
        return {
            "event": f"approver_{verb}",
            "approver": approver,
            "decision": verb,
            "description": f"{approver} {verb} the request.",
        }

    return build


def _deadline_extended(event: AuditEvent, numbers: dict[int, str]) -> Entry | None:
    until = day(event.details.get("until"))
    if until is None:
        return None
    return {
        "event": "deadline_extended",
        "until": until,
        "description": f"The deadline was extended to {until}.",
    }


# action → builder(event, approver numbers) -> entry or None. Only these become history.
EVENTS: dict[str, Builder] = {
    "status_changed": _status_changed,
    "request_approved": _decision("approved"),
    "request_rejected": _decision("rejected"),
    "deadline_extended": _deadline_extended,
}


def _request_events(data_request: DataRequest) -> Iterator[tuple[datetime, Entry]]:
    numbers = approver_numbers(data_request)
    rows = AuditEvent.objects.filter(request_ref=data_request.reference, action__in=list(EVENTS))
    for event in rows.order_by("seq").iterator(chunk_size=500):
        entry = EVENTS[event.action](event, numbers)
        if entry is not None:
            yield event.created_at, entry


def _operation_events(data_request: DataRequest) -> Iterator[tuple[datetime, Entry]]:
    rows = (
        Operation.objects.filter(
            request=data_request, state__in=list(OUTCOMES), finished_at__isnull=False
        )
        .select_related("device")
        .only(
            "action",
            "module_id",
            "state",
            "phase",
            "finished_at",
            "device__device_id",
            "device__registration_id",
        )
        .order_by("finished_at", "seq")
    )
    for op in rows.iterator(chunk_size=1000):
        name = operation_name(op.action, op.module_id)
        assert op.finished_at is not None  # the query takes finished operations only
        yield (
            op.finished_at,
            {
                "event": "device_operation",
                "device": op.device.label,
                "phase": op.phase,
                "operation": name,
                "outcome": OUTCOMES[op.state],
            },
        )


# --- values ----------------------------------------------------------------------------------
def _time(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _counts(details: dict[str, Any], *names: str) -> dict[str, int]:
    """Integer fields only, so nothing but a number can be copied from the details."""
    return {
        name: details[name]
        for name in names
        if isinstance(details.get(name), int) and not isinstance(details[name], bool)
    }
