"""The portal's side of the Azure seam: clients for a request, every call on the audit trail."""

from __future__ import annotations

from collections.abc import Callable

from requests_app.azure import AzureClients, CallRecord, configured_targets
from requests_app.models import AuditEvent, DataRequest


def audit_hook(data_request: DataRequest) -> Callable[[CallRecord], None]:
    """An ``on_call`` hook that appends one audit event per HTTP attempt (never bodies)."""

    def record(call: CallRecord) -> None:
        AuditEvent.record(
            "azure_call",
            request=data_request,
            method=call.method,
            host=call.host,
            path=call.path,
            status=call.status,
            request_id=call.request_id,
            tracking_id=call.tracking_id,
            error_code=call.error_code,
            duration_ms=call.duration_ms,
            attempt=call.attempt,
            outcome=call.outcome,
        )

    return record


def clients_for(data_request: DataRequest) -> AzureClients:
    from requests_app.jobs.queues import redis_connection

    return AzureClients(
        configured_targets(), redis=redis_connection(), on_call=audit_hook(data_request)
    )
