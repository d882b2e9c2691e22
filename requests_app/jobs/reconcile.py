"""The reconciler: what the database says is left gets a live job, whatever Redis lost.

Recovery is bounded by lease expiry + one reconciler period (DSR_LEASE_SECONDS +
DSR_RECONCILE_SECONDS): a worker killed mid-operation stops renewing its leases; once they
expire the reconciler hands the operations back (pending, same attempt number, so the dead
worker's late write would change 0 rows) and enqueues the request again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from requests_app.jobs import fulfilment
from requests_app.jobs.queues import (
    RUN_JOB,
    SCOPE_JOB,
    enqueue_now,
    fulfilment_queue,
    get_queue,
    scope_job_id,
)
from requests_app.models import AuditEvent, DataRequest, Operation, PlannedDevice, Status

log = logging.getLogger(__name__)
# Not STARTED: a SIGKILLed worker leaves its job "started" until RQ's own maintenance notices
# (minutes), and a SimpleWorker sends no heartbeat while a job runs, so RQ cannot tell a live
# job from a dead one. A running job shows in the database instead: it holds a device,
# operation or archive lease (has_live_lease), renewed at every operation.
LIVE = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def release_expired_leases(now: datetime | None = None) -> tuple[int, int]:
    """Hand back work whose worker stopped renewing its lease, and put the loss on each
    request's timeline ("worker lost; resumed by the reconciler", with the time lost: from the
    last renewal the dead worker made to now). Returns (operations, devices) released."""
    now = now or timezone.now()
    expired_ops = Operation.objects.filter(state=Operation.State.RUNNING, lease_until__lt=now)
    expired_devices = PlannedDevice.objects.filter(lease_until__lt=now)
    last_renewal: dict[int, datetime] = {}
    for rows in (expired_ops, expired_devices):
        for row in rows.values("request_id").annotate(until=Max("lease_until")):
            seen = last_renewal.get(row["request_id"])
            last_renewal[row["request_id"]] = max(row["until"], seen or row["until"])
    ops = expired_ops.update(state=Operation.State.PENDING, claimed_by="", lease_until=None)
    devices = expired_devices.update(claimed_by="", lease_until=None)
    for data_request in DataRequest.objects.filter(pk__in=last_renewal):
        record_takeover(data_request, last_renewal[data_request.pk], now, by="reconciler")
    return ops, devices


def record_takeover(
    data_request: DataRequest, lease_until: datetime, now: datetime, *, by: str
) -> None:
    """Put a lost worker on the request's timeline: when its work was taken back (by the
    reconciler, or by another worker claiming the expired lease first) and how long it stood
    still, from the dead worker's last renewal (lease_until − DSR_LEASE_SECONDS) to now."""
    lease = timedelta(seconds=settings.DSR_LEASE_SECONDS)
    AuditEvent.record(
        "work_resumed",
        request=data_request,
        status=data_request.status,
        by=by,
        lease_expired_at=lease_until.isoformat(),
        lost_seconds=round((now - (lease_until - lease)).total_seconds()),
    )


def has_live_job(job_ids: Iterable[str]) -> bool:
    queue = get_queue("fulfilment")
    for job_id in job_ids:
        try:
            job = Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) in LIVE:
            return True
    return False


def has_live_lease(data_request: DataRequest, now: datetime) -> bool:
    return (
        any(
            until is not None and until >= now
            for until in (data_request.archive_claimed_until, data_request.finish_claimed_until)
        )
        or data_request.devices.filter(lease_until__gte=now).exists()
        or data_request.operations.filter(lease_until__gte=now).exists()
    )


def reconcile() -> int:
    """Re-enqueue requests with work left and no live job. Returns how many were re-enqueued."""
    now = timezone.now()
    released = release_expired_leases(now)
    recent = now - timedelta(seconds=settings.DSR_LEASE_SECONDS)
    enqueued = 0
    try:
        for data_request in DataRequest.objects.filter(
            status__in=[Status.APPROVED, Status.RUNNING]
        ):
            if has_live_lease(data_request, now) or (
                data_request.last_enqueued_at and data_request.last_enqueued_at > recent
            ):
                continue
            if has_live_job(fulfilment.job_ids(data_request)):
                continue
            if data_request.status == Status.APPROVED:
                enqueue_now(
                    RUN_JOB,
                    data_request.pk,
                    queue=fulfilment_queue(data_request),
                    job_id=fulfilment.first_job_id(data_request),
                )
                DataRequest.objects.filter(pk=data_request.pk).update(last_enqueued_at=now)
            else:
                fulfilment.start(data_request)
            AuditEvent.record(
                "reconciler_enqueued", request=data_request, status=data_request.status
            )
            enqueued += 1
        planning = DataRequest.objects.filter(status=Status.PLANNING, scoping_error="").filter(
            Q(last_enqueued_at__isnull=True) | Q(last_enqueued_at__lt=recent)
        )
        for data_request in planning:
            claimed = (
                data_request.scoping_claimed_until and data_request.scoping_claimed_until >= now
            )
            if claimed or data_request.updated_at > recent:
                continue
            if has_live_job([scope_job_id(data_request)]):
                continue
            enqueue_now(SCOPE_JOB, data_request.pk, job_id=scope_job_id(data_request))
            DataRequest.objects.filter(pk=data_request.pk).update(last_enqueued_at=now)
            AuditEvent.record(
                "reconciler_enqueued", request=data_request, status=data_request.status
            )
            enqueued += 1
    except RedisError as exc:
        log.warning("reconciler: Redis unavailable (%s); will try again next period", exc)
    if enqueued or any(released):
        log.info("reconciler: %s re-enqueued, leases released %s", enqueued, released)
    return enqueued


def send_reminders() -> int:
    from requests_app.workflow import reminders

    return reminders.send_all()
