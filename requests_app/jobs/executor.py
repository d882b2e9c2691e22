"""One planned operation against Azure: its registry entry's client call, the answer read the
way the entry says, and for an export the document stored (``evidence.store``).

Azure's answers never raise from here: an error becomes a failed outcome with Azure's status,
code and message, and a host that is not a configured target a skipped one (nothing called).
Throttling is not an error of the operation: a call still throttled (429, or no pacing token)
when the client's retries run out leaves the operation pending, to run again later, so a storm
of 429s slows a plan and never fails it.
"""

from __future__ import annotations

from typing import Required, TypedDict

from requests_app.azure import (
    AzureClients,
    AzureError,
    AzureResponse,
    Throttled,
    UnconfiguredTarget,
)
from requests_app.evidence.store import ExportStore
from requests_app.jobs.operation_types import ids_of
from requests_app.jobs.operations import API_VERSIONS, OPERATIONS
from requests_app.models import DataRequest, Operation


class OperationOutcome(TypedDict, total=False):
    """What one operation ended with, as ``claims.record`` stores it on the row."""

    state: Required[str]  # an Operation.State
    http_status: int | None
    error_code: str | None
    request_id: str | None
    tracking_id: str | None
    duration_ms: int
    message: str
    retry_after: float | None  # pending outcomes (throttled): seconds Azure asked to wait


def outcome_of(response: AzureResponse, state: str, message: str = "") -> OperationOutcome:
    return {
        "state": state,
        "http_status": response.status,
        "error_code": response.error_code,
        "request_id": response.request_id,
        "tracking_id": response.tracking_id,
        "duration_ms": response.duration_ms,
        "message": message,
    }


def execute(op: Operation, data_request: DataRequest, clients: AzureClients) -> OperationOutcome:
    """Run one operation through the Azure client; returns its outcome."""
    entry = OPERATIONS[op.action]
    try:
        client = clients.for_host(op.host)
        response = entry.call(client, ids_of(op.device, op.module_id))
    except UnconfiguredTarget as exc:
        return {"state": Operation.State.SKIPPED, "message": f"not a configured target: {exc}"}
    except Throttled as exc:
        return {
            "state": Operation.State.PENDING,
            "http_status": exc.status,
            "error_code": exc.error_code,
            "request_id": exc.request_id,
            "retry_after": exc.retry_after,
            "message": f"throttled, to be run again: {exc}",
        }
    except AzureError as exc:
        return {
            "state": Operation.State.FAILED,
            "http_status": exc.status,
            "error_code": exc.error_code,
            "request_id": exc.request_id,
            "tracking_id": exc.tracking_id,
            "message": f"{exc.__class__.__name__}: {exc}",
        }
    state, message = entry.outcome.read(response)
    if entry.document and state == Operation.State.DONE:
        source = {"host": op.host, "path": op.path, "api_version": API_VERSIONS[entry.target]}
        name = entry.document_name(op.module_id)
        ExportStore(data_request).write(op.device.label, name, response.data, source=source)
    return outcome_of(response, state, message)
