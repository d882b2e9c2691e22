"""Running an approved plan: claim a device, run its operations in order, record each outcome.

The database is the truth. A worker claims one device at a time with a conditional UPDATE on
its lease, then each operation with a compare-and-set on (state, attempt); a worker that lost
its lease writes nothing (0 rows). Several jobs for one request run side by side on different
workers and share the Azure pacing through Redis. The phases go export → archive → erasure →
verify; the erasure never starts before the archive is stored. Every DELETE that meets 404 is
"already absent", so re-running anything after a crash or a timeout repeats no effect.
"""

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from requests_app import emails
from requests_app.azure import AzureError, UnconfiguredTarget
from requests_app.models import (
    AuditEvent,
    DataRequest,
    IllegalTransition,
    Operation,
    PlannedDevice,
    Status,
)
from requests_app.queues import enqueue_now

log = logging.getLogger(__name__)

RUN_JOB = "requests_app.fulfilment.run_job"
UNFINISHED = [Operation.State.PENDING, Operation.State.RUNNING, Operation.State.FAILED]
API_VERSIONS = {"dps": "2021-10-01", "hub": "2021-04-12"}


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_end():
    return timezone.now() + timedelta(seconds=settings.DSR_LEASE_SECONDS)


# --- entry points -------------------------------------------------------------------------


def first_job_id(request):
    return f"dsr-run-{request.pk}-0"


def job_ids(request):
    return [f"dsr-run-{request.pk}-{lane}" for lane in range(settings.DSR_PARALLEL_JOBS + 1)]


def start(request, parallel=None):
    """Enqueue the jobs that run a request (also used by the reconciler)."""
    parallel = parallel or settings.DSR_PARALLEL_JOBS
    devices = request.devices.count()
    jobs = max(1, min(parallel, devices))
    DataRequest.objects.filter(pk=request.pk).update(last_enqueued_at=timezone.now())
    for lane in range(1, jobs + 1):
        enqueue_now(RUN_JOB, request.pk, queue="fulfilment", job_id=f"dsr-run-{request.pk}-{lane}")


def run_job(request_id):
    """RQ job (first one enqueued on approval): fan out, then work like every sibling."""
    request = DataRequest.objects.get(pk=request_id)
    if request.status == Status.APPROVED:
        try:
            request.transition(Status.RUNNING)
        except IllegalTransition:
            request.refresh_from_db()
        else:
            start(request)
    run_threads(request_id, settings.DSR_WORKER_THREADS)


def run_threads(request_id, threads):
    """Work on ``threads`` devices at once in this job. Azure calls spend most of their time
    waiting (on the network, or on the shared pacing bucket of one hub while another is idle),
    so one process keeps several calls in flight; the database claims keep them apart."""
    if threads <= 1:
        Runner(request_id).run()
        return
    errors = []

    def work():
        try:
            Runner(request_id).run()
        except Exception as exc:  # re-raised below so RQ records the job as failed
            log.exception("fulfilment thread failed")
            errors.append(exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]


def retry(request, *, actor):
    """failed → approved; failed operations go back to pending, finished ones stay finished."""
    with transaction.atomic():
        request.transition(Status.APPROVED, actor=actor, retry=True)
        request.operations.filter(state=Operation.State.FAILED).update(
            state=Operation.State.PENDING, claimed_by="", lease_until=None
        )
        request.devices.update(claimed_by="", lease_until=None)
        DataRequest.objects.filter(pk=request.pk).update(failure={})
        transaction.on_commit(
            lambda: enqueue_now(
                RUN_JOB, request.pk, queue="fulfilment", job_id=first_job_id(request)
            )
        )


# --- the runner ---------------------------------------------------------------------------


class Runner:
    def __init__(self, request_id):
        self.request_id = request_id
        self.name = f"{worker_name()}:{threading.get_ident()}:{time.monotonic_ns()}"
        self._clients = None

    @property
    def request(self):
        return DataRequest.objects.get(pk=self.request_id)

    def clients(self, request):
        if self._clients is None:
            from requests_app.azure_calls import clients_for

            self._clients = clients_for(request)
        return self._clients

    def run(self):
        while True:
            request = self.request
            if request.status != Status.RUNNING:
                return
            phase = current_phase(request)
            if phase is None:
                # One worker writes the certificate and closes the request; the others wait
                # for the status to change, or for the claim to expire if that worker died (a
                # second builder after a slow first one repeats work, never an effect).
                if request.claim("finish_claimed_until", settings.DSR_LEASE_SECONDS):
                    finish(request)
                    return
                time.sleep(0.5)
                continue
            if phase == "archive":
                if not self.build_archive(request):
                    time.sleep(0.5)
                continue
            device = claim_device(request, phase, self.name)
            if device is not None:
                self.run_device(request, device, phase)
                continue
            if request.operations.filter(phase__in=phase, state=Operation.State.FAILED).exists():
                fail(request)
                return
            time.sleep(0.5)  # the remaining devices are leased by other workers

    def build_archive(self, request):
        """One worker builds the archive (claimed like a device); True when it is stored."""
        from requests_app.archive import build_export_archive

        if not request.claim("archive_claimed_until", settings.DSR_LEASE_SECONDS):
            return False
        build_export_archive(request)
        # The archive holds the exported data now; the loose copies are not kept around.
        from requests_app.evidence_store import ExportStore

        ExportStore(request).discard()
        return True

    def run_device(self, request, device, phase):
        operations = device.operations.filter(phase__in=phase).exclude(
            state__in=[
                Operation.State.DONE,
                Operation.State.ALREADY_ABSENT,
                Operation.State.SKIPPED,
            ]
        )
        for op in operations.order_by("seq"):
            if not renew_device(device, self.name):
                return  # lost the lease: another worker has this device now
            if op.state == Operation.State.FAILED:
                return  # a failed step stops this device; retry resets it
            claimed = claim_operation(op, self.name)
            if claimed is None:
                return
            try:
                outcome = execute(claimed, request, self.clients(request))
            except Exception:
                # Not an Azure answer (those are outcomes): hand the step back at once rather
                # than at lease expiry; its effect is unknown, so it runs again.
                Operation.objects.filter(
                    pk=claimed.pk, state=Operation.State.RUNNING, attempt=claimed.attempt
                ).update(state=Operation.State.PENDING, claimed_by="", lease_until=None)
                release_device(device, self.name)
                raise
            if not record(claimed, outcome):
                return
            if outcome["state"] == Operation.State.FAILED:
                fail(request, claimed)
                return
        release_device(device, self.name)


def current_phase(request):
    """The phase with work left: export ops, then the archive, then erasure and verify ops."""
    unfinished = request.operations.filter(state__in=UNFINISHED)
    if unfinished.filter(phase=Operation.Phase.EXPORT).exists():
        return [Operation.Phase.EXPORT]
    if request.includes_export and not request.artifacts.filter(kind="export_archive").exists():
        return "archive"
    if unfinished.exists():
        return [Operation.Phase.ERASURE, Operation.Phase.VERIFY]
    return None


def claim_device(request, phase, owner):
    now = timezone.now()
    candidates = (
        request.devices.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now),
            operations__phase__in=phase,
            operations__state=Operation.State.PENDING,
        )
        .exclude(operations__phase__in=phase, operations__state=Operation.State.FAILED)
        .distinct()
        .order_by("position")
        .values_list("pk", "lease_until")[:20]
    )
    for pk, expired in candidates:
        claimed = PlannedDevice.objects.filter(pk=pk, lease_until=expired).update(
            claimed_by=owner, lease_until=lease_end()
        )
        if claimed:
            if expired is not None:  # a dead worker's device, taken over before the reconciler
                from requests_app.reconcile import record_takeover

                record_takeover(request, expired, now, by="worker")
            return PlannedDevice.objects.get(pk=pk)
    return None


def renew_device(device, owner):
    return PlannedDevice.objects.filter(pk=device.pk, claimed_by=owner).update(
        lease_until=lease_end()
    )


def release_device(device, owner):
    PlannedDevice.objects.filter(pk=device.pk, claimed_by=owner).update(
        claimed_by="", lease_until=None
    )


def claim_operation(op, owner):
    """pending → running with attempt + 1; None if someone else moved it first."""
    fresh = Operation.objects.get(pk=op.pk)
    if (
        fresh.state == Operation.State.RUNNING
        and fresh.lease_until
        and (fresh.lease_until < timezone.now())
    ):
        # The worker that had it stopped heart-beating: take it over (outcome unknown, re-run).
        Operation.objects.filter(
            pk=op.pk, state=Operation.State.RUNNING, attempt=fresh.attempt
        ).update(state=Operation.State.PENDING)
        fresh.state = Operation.State.PENDING
    if fresh.state != Operation.State.PENDING:
        return None
    attempt = fresh.attempt + 1
    claimed = Operation.objects.filter(
        pk=op.pk, state=Operation.State.PENDING, attempt=fresh.attempt
    ).update(
        state=Operation.State.RUNNING,
        attempt=attempt,
        claimed_by=owner,
        lease_until=lease_end(),
        started_at=timezone.now(),
    )
    if not claimed:
        return None
    fresh.state, fresh.attempt, fresh.claimed_by = Operation.State.RUNNING, attempt, owner
    return fresh


def record(op, outcome):
    """Store the outcome only if this worker still holds the operation (same attempt)."""
    return bool(
        Operation.objects.filter(
            pk=op.pk, state=Operation.State.RUNNING, attempt=op.attempt, claimed_by=op.claimed_by
        ).update(
            state=outcome["state"],
            http_status=outcome.get("http_status"),
            error_code=outcome.get("error_code") or "",
            azure_request_id=outcome.get("request_id") or "",
            tracking_id=outcome.get("tracking_id") or "",
            duration_ms=outcome.get("duration_ms"),
            message=outcome.get("message", "")[:2000],
            finished_at=timezone.now(),
            lease_until=None,
        )
    )


# --- one operation ------------------------------------------------------------------------


def outcome_of(response, state, message=""):
    return {
        "state": state,
        "http_status": response.status,
        "error_code": response.error_code,
        "request_id": response.request_id,
        "tracking_id": response.tracking_id,
        "duration_ms": response.duration_ms,
        "message": message,
    }


def execute(op, request, clients):
    """Run one operation through the Azure client; returns its outcome (never raises for Azure
    errors: they become a failed outcome with Azure's status, code and message)."""
    try:
        client = clients.for_host(op.host)
        return ACTIONS[op.action](op, request, client)
    except UnconfiguredTarget as exc:
        return {"state": Operation.State.SKIPPED, "message": f"not a configured target: {exc}"}
    except AzureError as exc:
        return {
            "state": Operation.State.FAILED,
            "http_status": exc.status,
            "error_code": exc.error_code,
            "request_id": exc.request_id,
            "tracking_id": exc.tracking_id,
            "message": f"{exc.__class__.__name__}: {exc}",
        }


def _store(op, request, name, data, api_kind):
    from requests_app.evidence_store import ExportStore

    source = {"host": op.host, "path": op.path, "api_version": API_VERSIONS[api_kind]}
    ExportStore(request).write(op.device.label, name, data, source=source)


def _export(fetch, name, api_kind):
    def run(op, request, client):
        device = op.device
        response = fetch(client, device, op)
        if not response.found:
            return outcome_of(response, Operation.State.ALREADY_ABSENT, "not present any more")
        data = response.data
        if name == "module":
            twin = client.get_module_twin(device.device_id, op.module_id)
            data = {"module": response.data, "twin": twin.data if twin.found else None}
            _store(op, request, f"modules/{op.module_id}", data, api_kind)
        else:
            _store(op, request, name, data, api_kind)
        return outcome_of(response, Operation.State.DONE)

    return run


def _delete(call):
    def run(op, request, client):
        response = call(client, op.device, op)
        if not response.found:
            return outcome_of(response, Operation.State.ALREADY_ABSENT, "already absent")
        return outcome_of(response, Operation.State.DONE)

    return run


def _verify_absent(fetch):
    def run(op, request, client):
        response = fetch(client, op.device, op)
        if response.found:
            return outcome_of(response, Operation.State.FAILED, "still present after deletion")
        return outcome_of(response, Operation.State.DONE, "verified absent (404)")

    return run


def _block_reprovisioning(op, request, client):
    reg = op.device.registration_id
    body = {
        "registrationId": reg,
        "attestation": {"type": "symmetricKey"},
        "provisioningStatus": "disabled",
        "capabilities": {"iotEdge": False},
    }
    existing = client.get_enrollment(reg)
    if existing.found and (existing.data or {}).get("provisioningStatus") == "disabled":
        return outcome_of(existing, Operation.State.DONE, "disabled enrollment already in place")
    etag = (existing.data or {}).get("etag") if existing.found else None
    if existing.found:
        body = {**existing.data, "provisioningStatus": "disabled"}
    response = client.create_or_update_enrollment(body, etag=etag)
    return outcome_of(
        response, Operation.State.DONE, "disabled individual enrollment retained to block it"
    )


def _verify_disabled(op, request, client):
    response = client.get_enrollment(op.device.registration_id)
    status = (response.data or {}).get("provisioningStatus") if response.found else None
    if status == "disabled":
        return outcome_of(response, Operation.State.DONE, "verified: enrollment is disabled")
    return outcome_of(response, Operation.State.FAILED, f"enrollment not disabled ({status})")


ACTIONS = {
    "dps.get_enrollment": _export(
        lambda c, d, o: c.get_enrollment(d.registration_id), "dps-enrollment", "dps"
    ),
    "dps.get_enrollment_group": _export(
        lambda c, d, o: c.get_enrollment_group(d.group_id), "dps-group-enrollment", "dps"
    ),
    "dps.get_registration": _export(
        lambda c, d, o: c.get_registration(d.registration_id), "dps-registration", "dps"
    ),
    "hub.get_device": _export(lambda c, d, o: c.get_device(d.device_id), "iothub-device", "hub"),
    "hub.get_twin": _export(lambda c, d, o: c.get_twin(d.device_id), "iothub-twin", "hub"),
    "hub.get_module": _export(
        lambda c, d, o: c.get_module(d.device_id, o.module_id), "module", "hub"
    ),
    "dps.delete_enrollment": _delete(lambda c, d, o: c.delete_enrollment(d.registration_id)),
    "dps.block_reprovisioning": _block_reprovisioning,
    "dps.delete_registration": _delete(lambda c, d, o: c.delete_registration(d.registration_id)),
    "hub.delete_module": _delete(lambda c, d, o: c.delete_module(d.device_id, o.module_id)),
    "hub.delete_device": _delete(lambda c, d, o: c.delete_device(d.device_id)),
    "verify.enrollment_absent": _verify_absent(lambda c, d, o: c.get_enrollment(d.registration_id)),
    "verify.enrollment_disabled": _verify_disabled,
    "verify.registration_absent": _verify_absent(
        lambda c, d, o: c.get_registration(d.registration_id)
    ),
    "verify.module_absent": _verify_absent(lambda c, d, o: c.get_module(d.device_id, o.module_id)),
    "verify.device_absent": _verify_absent(lambda c, d, o: c.get_device(d.device_id)),
}


# --- the end ------------------------------------------------------------------------------


def fail(request, op=None):
    if op is not None:
        # Re-read: the caller's copy predates record(), so its status/code/message are empty.
        op = Operation.objects.select_related("device").get(pk=op.pk)
    op = op or request.operations.filter(state=Operation.State.FAILED).order_by("seq").first()
    failure = {}
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
        current = DataRequest.objects.select_for_update().get(pk=request.pk)
        if current.status != Status.RUNNING:
            return
        DataRequest.objects.filter(pk=request.pk).update(failure=failure)
        current.failure = failure
        # Under its own key: the failure has an "action" field, which would collide with
        # AuditEvent.record's own ``action`` argument (TypeError, request stuck in running).
        current.transition(Status.FAILED, failure=failure)
    emails.request_finished(DataRequest.objects.get(pk=request.pk))


def final_status(request):
    """``(status, issues)`` once every operation has finished: completed with issues when a
    device's hub is not configured or an operation was skipped (both left for a person)."""
    issues = request.devices.filter(state=PlannedDevice.State.UNREACHABLE).count() + (
        request.operations.filter(state=Operation.State.SKIPPED).count()
    )
    return (Status.COMPLETED_WITH_ISSUES if issues else Status.COMPLETED), issues


def finish(request):
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
    status, issues = final_status(request)
    completed = timezone.now()
    certificate = None
    if request.includes_erasure:
        from requests_app.certificate import render_certificate

        certificate = render_certificate(request, status, completed)
    with transaction.atomic():
        taken = DataRequest.objects.filter(pk=request.pk, status=Status.RUNNING).update(
            finish_claimed_until=lease_end()
        )
        if not taken:
            return  # another finisher committed first
        if certificate is not None:
            from requests_app.certificate import store_certificate

            store_certificate(request, certificate)
        request.transition(status, issues=issues, completed=completed.isoformat())
        DataRequest.objects.filter(pk=request.pk).update(completed_at=completed)
        request.completed_at = completed
        AuditEvent.record("request_finished", request=request, status=status)
        if certificate is not None:
            # The scheduler signs a checkpoint covering this certificate soon (it holds the
            # key; the worker only asks).
            from requests_app.checkpoints import request_checkpoint

            request_checkpoint("certificate", request=request)
    emails.request_finished(DataRequest.objects.get(pk=request.pk))
