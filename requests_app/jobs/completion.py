"""The end of a run: a failed operation stops the request (``fail``); once every operation has
finished, ``finish`` decides the outcome, issues the certificate that states it (an erasure)
and gives the request that status, crash-safe (see ``finish``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from requests_app.jobs.claims import lease_end
from requests_app.models import AuditEvent, DataRequest, Operation, PlannedDevice, Status
from requests_app.workflow import emails


def fail(data_request: DataRequest, op: Operation | None = None) -> None:
    if op is not None:
        # Re-read: the caller's copy predates record(), so its status/code/message are empty.
        op = Operation.objects.select_related("device").get(pk=op.pk)
    op = op or data_request.operations.filter(state=Operation.State.FAILED).order_by("seq").first()
    failure: dict[str, Any] = {}
    if op is not None:
        failure = {
            "operation": op.seq,
            "action": op.action,
            "device": op.device.label,
            "path": f"{op.method} {op.host}{op.path}",
            "http_status": op.http_status,
            "error_code": op.error_code,
            "message": op.message,
        }
    with transaction.atomic():
        current = DataRequest.objects.select_for_update().get(pk=data_request.pk)
        if current.status != Status.RUNNING:
            return
        DataRequest.objects.filter(pk=data_request.pk).update(failure=failure)
        current.failure = failure
        # Under its own key: the failure has an "action" field, which would collide with
        # AuditEvent.record's own ``action`` argument (TypeError, request stuck in running).
        current.transition(Status.FAILED, failure=failure)
    emails.request_finished(DataRequest.objects.get(pk=data_request.pk))


def final_status(data_request: DataRequest) -> tuple[Status, int]:
    """``(status, issues)`` once every operation has finished: completed with issues when a
    device's hub is not configured or an operation was skipped (both left for a person)."""
    issues = data_request.devices.filter(state=PlannedDevice.State.UNREACHABLE).count() + (
        data_request.operations.filter(state=Operation.State.SKIPPED).count()
    )
    return (Status.COMPLETED_WITH_ISSUES if issues else Status.COMPLETED), issues


def finish(data_request: DataRequest) -> None:
    """Every operation finished: decide the outcome, issue the certificate that states it (an
    erasure), then give the request that status. Only the finisher that commits sends the email.

    The order, and why a crash anywhere leaves nothing half-done:

    1. The outcome (status, completion time) is decided first, and the certificate rendered
       from it outside any transaction: the slow part (seconds for thousands of devices)
       holds no lock and writes nothing.
    2. One short transaction then takes the request with a conditional UPDATE (still running:
       renew the finish claim), stores the certificate's two files and rows, moves the status
       and records ``request_finished``. It all commits or none of it does, so a request is
       never completed without its certificate, and no certificate is ever served for a
       request that is still running.
    3. A worker that dies before the commit leaves the request running with an expired finish
       claim; the reconciler enqueues it again and the next finisher starts from step 1 (a new
       completion time, the files written again). Nothing reaches Azure here, so a repeat has
       no effect but the work. A file moved into place by a transaction that then rolled back
       has no row, is never served, and is replaced by the next finish.
    4. A second finisher (the first one outlived its claim) waits on the row at the
       conditional UPDATE, then matches no row, since the status is final: it returns before
       replacing any file, so the stored files always match their rows.

    The request's ``completed_at`` is set to the time the certificate states (``transition``
    stamps its own "now", seconds later after a large certificate), in the same transaction.
    """
    status, issues = final_status(data_request)
    completed = timezone.now()
    certificate = None
    if data_request.includes_erasure:
        from requests_app.evidence.certificate import render_certificate

        certificate = render_certificate(data_request, status, completed)
    with transaction.atomic():
        taken = DataRequest.objects.filter(pk=data_request.pk, status=Status.RUNNING).update(
            finish_claimed_until=lease_end()
        )
        if not taken:
            return  # another finisher committed first
        if certificate is not None:
            from requests_app.evidence.certificate import store_certificate

            store_certificate(data_request, certificate)
        data_request.transition(status, issues=issues, completed=completed.isoformat())
        DataRequest.objects.filter(pk=data_request.pk).update(completed_at=completed)
        data_request.completed_at = completed
        AuditEvent.record("request_finished", request=data_request, status=status)
        if certificate is not None:
            # The scheduler signs a checkpoint covering this certificate soon (it holds the
            # key; the worker only asks).
            from requests_app.evidence.checkpoints import request_checkpoint

            request_checkpoint("certificate", data_request=data_request)
    emails.request_finished(DataRequest.objects.get(pk=data_request.pk))
