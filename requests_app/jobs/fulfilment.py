"""Running an approved plan: claim a device, run its operations in order, record each outcome.

The database is the truth. A worker claims one device at a time and each of its operations
(``claims``), runs each through the operation registry (``executor``) and records the outcome;
a worker that lost its lease writes nothing (0 rows). Several jobs for one request run side by
side on different workers and share the Azure pacing through Redis. The phases go export →
archive → erasure → verify; the erasure never starts before the archive is stored. Every DELETE
that meets 404 is "already absent", so re-running anything after a crash or a timeout repeats
no effect. The last worker out closes the request (``completion``).

Fairness: a worker runs one job at a time, so a long request's jobs could hold every worker
while a three-device request waits behind them. A job therefore hands its worker back between
devices once it has run ``DSR_FULFILMENT_SLICE_SECONDS`` and other jobs are waiting (or once it
has used half its RQ timeout, waiting or not): it re-enqueues its lane at the back of the queue
and returns, and the waiting jobs get their turn. Leases are released device by device, so
nothing is lost between turns. A short request's jobs (``DSR_SHORT_REQUEST_DEVICES``) have their
own queue, which workers serve first, so they take the next free worker instead of queueing
behind a long request's turns.

``run_job`` is the RQ job: its dotted path is named by jobs already queued in Redis.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from redis.exceptions import RedisError
from rq import get_current_job

from requests_app.jobs import executor
from requests_app.jobs.claims import (
    claim_device,
    claim_operation,
    hand_back,
    record,
    release_device,
    renew_device,
    worker_name,
)
from requests_app.jobs.completion import fail, finish
from requests_app.jobs.operations import FINISHED_STATES, UNFINISHED_STATES
from requests_app.jobs.queues import (
    FULFILMENT_QUEUES,
    RUN_JOB,
    enqueue_now,
    fulfilment_queue,
    get_queue,
    next_turn_id,
    run_job_id,
    run_job_prefix,
)
from requests_app.models import DataRequest, IllegalTransition, Operation, PlannedDevice, Status

if TYPE_CHECKING:
    from requests_app.azure import AzureClients
    from requests_app.models.audit import Actor

log = logging.getLogger(__name__)

# The longest a thread pauses after an operation was throttled past the client's retries.
THROTTLED_PAUSE = 30.0
# How often a running job asks Redis whether others wait for a worker.
CHECK_SECONDS = 0.5


# --- entry points -------------------------------------------------------------------------


def first_job_id(data_request: DataRequest) -> str:
    return run_job_id(data_request)


def job_ids(data_request: DataRequest) -> list[str]:
    return [
        run_job_id(data_request, lane, turn)
        for lane in range(settings.DSR_PARALLEL_JOBS + 1)
        for turn in (False, True)
    ]


def start(
    data_request: DataRequest, parallel: int | None = None, *, first_running: bool = False
) -> None:
    """Enqueue the jobs that run a request (also used by the reconciler): one lane per
    ``DSR_WORKER_THREADS`` devices, at most ``DSR_PARALLEL_JOBS``, so a three-device request
    takes one worker, not four. ``first_running``: lane 0 is the job calling this."""
    parallel = parallel or settings.DSR_PARALLEL_JOBS
    devices = data_request.devices.count()
    jobs = max(1, min(parallel, math.ceil(devices / settings.DSR_WORKER_THREADS)))
    DataRequest.objects.filter(pk=data_request.pk).update(last_enqueued_at=timezone.now())
    queue = fulfilment_queue(data_request)
    for lane in range(1 if first_running else 0, jobs):
        enqueue_now(RUN_JOB, data_request.pk, queue=queue, job_id=run_job_id(data_request, lane))


def run_job(request_id: int) -> None:
    """RQ job (first one enqueued on approval): fan out, then work like every sibling."""
    data_request = DataRequest.objects.get(pk=request_id)
    if data_request.status == Status.APPROVED:
        try:
            data_request.transition(Status.RUNNING)
        except IllegalTransition:
            data_request.refresh_from_db()
        else:
            start(data_request, first_running=True)
    job = get_current_job()
    # In an RQ worker a job takes turns with the others; called directly it runs to the end.
    turn = Turn(job.timeout, request_id, job.origin) if job is not None else None
    run_threads(request_id, settings.DSR_WORKER_THREADS, turn)
    if job is not None and turn is not None and turn.over:
        hand_over(DataRequest.objects.get(pk=request_id), job.id)


class Turn:
    """When a job should give its worker back: after the slice when other jobs wait in its
    queue, at once (after a device) when a short request's job waits for a long job's worker,
    or after half its RQ timeout in any case. Shared by the job's threads."""

    def __init__(
        self,
        timeout: int | float | None,
        request_id: int,
        queue: str = FULFILMENT_QUEUES[-1],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.request_id = request_id
        # A job in the short queue does not give way to long jobs: a worker would take it
        # straight back. A long job gives way to a waiting short one at once (after the device
        # in hand), to another long one after its slice.
        rank = FULFILMENT_QUEUES.index(queue)
        self.queues = FULFILMENT_QUEUES[: rank + 1]
        self.urgent = FULFILMENT_QUEUES[:rank]
        self._clock = clock
        self.started = clock()
        self.slice = settings.DSR_FULFILMENT_SLICE_SECONDS
        self.limit = (timeout or settings.DSR_JOB_TIMEOUT) / 2
        self.over = False
        self.devices = 0  # run in this turn: a turn ends only after some work, never before
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def worked(self) -> None:
        with self._lock:
            self.devices += 1

    def ended(self) -> bool:
        """Checked between devices: True once the job should stop claiming work."""
        with self._lock:
            if self.over:
                return True
            if not self.devices:
                return False
            elapsed = self._clock() - self.started
            if elapsed >= self.limit:
                self.over = True
            elif self._clock() - self._checked >= CHECK_SECONDS:
                self._checked = self._clock()
                if elapsed >= self.slice:
                    self.over = others_waiting(self.request_id, self.queues)
                elif self.urgent:
                    self.over = others_waiting(self.request_id, self.urgent)
            return self.over


def others_waiting(request_id: int, queues: tuple[str, ...] = FULFILMENT_QUEUES) -> bool:
    """Another request's jobs wait in one of ``queues``. This request's own lanes do not
    count: handing the worker to them would only add a restart."""
    own = run_job_prefix(request_id)
    try:
        waiting = [job_id for name in queues for job_id in get_queue(name).get_job_ids(0, 100)]
    except RedisError:
        return False
    return any(not job_id.startswith(own) for job_id in waiting)


def hand_over(data_request: DataRequest, job_id: str) -> None:
    """Re-enqueue this lane at the back of the queue, if the request still has work left."""
    if data_request.status != Status.RUNNING or not job_id:
        return
    DataRequest.objects.filter(pk=data_request.pk).update(last_enqueued_at=timezone.now())
    enqueue_now(
        RUN_JOB,
        data_request.pk,
        queue=fulfilment_queue(data_request),
        job_id=next_turn_id(job_id),
    )
    log.info("%s: job %s gave its worker back after its turn", data_request.reference, job_id)


def run_threads(request_id: int, threads: int, turn: Turn | None = None) -> None:
    """Work on ``threads`` devices at once in this job. Azure calls spend most of their time
    waiting (on the network, or on the shared pacing bucket of one hub while another is idle),
    so one process keeps several calls in flight; the database claims keep them apart."""
    if threads <= 1:
        Runner(request_id, turn).run()
        return
    errors: list[Exception] = []

    def work() -> None:
        try:
            Runner(request_id, turn).run()
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


def retry(data_request: DataRequest, *, actor: Actor) -> None:
    """failed → approved; failed operations go back to pending, finished ones stay finished."""
    with transaction.atomic():
        data_request.transition(Status.APPROVED, actor=actor, retry=True)
        data_request.operations.filter(state=Operation.State.FAILED).update(
            state=Operation.State.PENDING, claimed_by="", lease_until=None
        )
        data_request.devices.update(claimed_by="", lease_until=None)
        DataRequest.objects.filter(pk=data_request.pk).update(failure={})
        transaction.on_commit(
            lambda: enqueue_now(
                RUN_JOB,
                data_request.pk,
                queue=fulfilment_queue(data_request),
                job_id=first_job_id(data_request),
            )
        )


# --- the runner ---------------------------------------------------------------------------


class Runner:
    def __init__(self, request_id: int, turn: Turn | None = None) -> None:
        self.request_id = request_id
        self.turn = turn
        self.name = f"{worker_name()}:{threading.get_ident()}:{time.monotonic_ns()}"
        self._clients: AzureClients | None = None

    @property
    def data_request(self) -> DataRequest:
        return DataRequest.objects.get(pk=self.request_id)

    def clients(self, data_request: DataRequest) -> AzureClients:
        if self._clients is None:
            from requests_app.jobs.azure_calls import clients_for

            self._clients = clients_for(data_request)
        return self._clients

    def run(self) -> None:
        while True:
            data_request = self.data_request
            if data_request.status != Status.RUNNING:
                return
            phase = current_phase(data_request)
            if phase is None:
                # One worker writes the certificate and closes the request; the others wait
                # for the status to change, or for the claim to expire if that worker died (a
                # second builder after a slow first one repeats work, never an effect).
                if data_request.claim("finish_claimed_until", settings.DSR_LEASE_SECONDS):
                    finish(data_request)
                    return
                time.sleep(0.5)
                continue
            if phase == "archive":
                if not self.build_archive(data_request):
                    time.sleep(0.5)
                continue
            if self.turn is not None and self.turn.ended():
                return  # the job hands its worker over (``hand_over``); leases are released
            device = claim_device(data_request, phase, self.name)
            if device is not None:
                self.run_device(data_request, device, phase)
                if self.turn is not None:
                    self.turn.worked()
                continue
            if data_request.operations.filter(
                phase__in=phase, state=Operation.State.FAILED
            ).exists():
                fail(data_request)
                return
            time.sleep(0.5)  # the remaining devices are leased by other workers

    def build_archive(self, data_request: DataRequest) -> bool:
        """One worker builds the archive (claimed like a device); True when it is stored."""
        from requests_app.evidence.archive import build_export_archive
        from requests_app.evidence.store import ExportStore

        if not data_request.claim("archive_claimed_until", settings.DSR_LEASE_SECONDS):
            return False
        build_export_archive(data_request)
        # The archive holds the exported data now; the loose copies are not kept around.
        ExportStore(data_request).discard()
        return True

    def run_device(
        self, data_request: DataRequest, device: PlannedDevice, phase: list[str]
    ) -> None:
        left = device.operations.filter(phase__in=phase).exclude(state__in=FINISHED_STATES)
        for op in left.order_by("seq"):
            if not renew_device(device, self.name):
                return  # lost the lease: another worker has this device now
            if op.state == Operation.State.FAILED:
                return  # a failed step stops this device; retry resets it
            claimed = claim_operation(op, self.name)
            if claimed is None:
                return
            try:
                outcome = executor.execute(claimed, data_request, self.clients(data_request))
            except Exception:
                # Not an Azure answer (those are outcomes): hand the step back at once rather
                # than at lease expiry; its effect is unknown, so it runs again.
                hand_back(claimed)
                release_device(device, self.name)
                raise
            if not record(claimed, outcome):
                return
            if outcome["state"] == Operation.State.FAILED:
                fail(data_request, claimed)
                return
            if outcome["state"] == Operation.State.PENDING:
                # Throttled past the client's retries: give the device back and let the
                # bucket refill; this or another thread runs the operation again later.
                release_device(device, self.name)
                time.sleep(min(max(outcome.get("retry_after") or 1.0, 1.0), THROTTLED_PAUSE))
                return
        release_device(device, self.name)


def current_phase(data_request: DataRequest) -> list[str] | Literal["archive"] | None:
    """The phase with work left: export ops, then the archive, then erasure and verify ops."""
    unfinished = data_request.operations.filter(state__in=UNFINISHED_STATES)
    if unfinished.filter(phase=Operation.Phase.EXPORT).exists():
        return [Operation.Phase.EXPORT]
    if (
        data_request.includes_export
        and not data_request.artifacts.filter(kind="export_archive").exists()
    ):
        return "archive"
    if unfinished.exists():
        return [Operation.Phase.ERASURE, Operation.Phase.VERIFY]
    return None
