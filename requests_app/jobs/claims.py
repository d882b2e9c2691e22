"""Who works on what: leases on devices and compare-and-set claims on operations.

A worker claims one device at a time with a conditional UPDATE on its lease and renews it at
every operation; it claims each operation with a compare-and-set on ``(state, attempt)`` and
records the outcome only if it still holds that attempt. A worker that lost its lease (the
reconciler or another worker took the device back) changes 0 rows.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from requests_app.models import DataRequest, Operation, PlannedDevice

if TYPE_CHECKING:
    from requests_app.jobs.executor import OperationOutcome


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_end() -> datetime:
    return timezone.now() + timedelta(seconds=settings.DSR_LEASE_SECONDS)


def claim_device(
    data_request: DataRequest, phase: Sequence[str], owner: str
) -> PlannedDevice | None:
    """The next device with pending operations of ``phase`` whose lease is free or expired,
    from the hub with the fewest devices in progress: each hub has its own throttles, so
    interleaving keeps every hub's buckets busy instead of one hub's at a time."""
    now = timezone.now()
    pending = data_request.devices.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        operations__phase__in=phase,
        operations__state=Operation.State.PENDING,
    ).exclude(operations__phase__in=phase, operations__state=Operation.State.FAILED)
    for hub in hubs_least_busy_first(data_request, now):
        candidates = (
            pending.filter(hub=hub)
            .distinct()
            .order_by("position")
            .values_list("pk", "lease_until")[:20]
        )
        for pk, expired in candidates:
            claimed = PlannedDevice.objects.filter(pk=pk, lease_until=expired).update(
                claimed_by=owner, lease_until=lease_end()
            )
            if claimed:
                if expired is not None:  # a dead worker's device, taken before the reconciler
                    from requests_app.jobs.reconcile import record_takeover

                    record_takeover(data_request, expired, now, by="worker")
                return PlannedDevice.objects.get(pk=pk)
    return None


def hubs_least_busy_first(data_request: DataRequest, now: datetime) -> list[str]:
    """The request's hubs ('' for devices on none), fewest devices under a live lease first."""
    devices = data_request.devices.order_by()
    busy = Counter({hub: 0 for hub in devices.values_list("hub", flat=True).distinct()})
    busy.update(devices.filter(lease_until__gte=now).values_list("hub", flat=True))
    return sorted(busy, key=lambda hub: (busy[hub], hub))


def renew_device(device: PlannedDevice, owner: str) -> int:
    return PlannedDevice.objects.filter(pk=device.pk, claimed_by=owner).update(
        lease_until=lease_end()
    )


def release_device(device: PlannedDevice, owner: str) -> None:
    PlannedDevice.objects.filter(pk=device.pk, claimed_by=owner).update(
        claimed_by="", lease_until=None
    )


def claim_operation(op: Operation, owner: str) -> Operation | None:
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


def hand_back(op: Operation) -> None:
    """running → pending at once (not at lease expiry): its effect is unknown, so it runs again."""
    Operation.objects.filter(pk=op.pk, state=Operation.State.RUNNING, attempt=op.attempt).update(
        state=Operation.State.PENDING, claimed_by="", lease_until=None
    )


def record(op: Operation, outcome: OperationOutcome) -> bool:
    """Store the outcome only if this worker still holds the operation (same attempt). A
    pending outcome (throttled) hands the operation back with what Azure answered."""
    pending = outcome["state"] == Operation.State.PENDING
    return bool(
        Operation.objects.filter(
            pk=op.pk, state=Operation.State.RUNNING, attempt=op.attempt, claimed_by=op.claimed_by
        ).update(
            state=outcome["state"],
            claimed_by="" if pending else op.claimed_by,
            http_status=outcome.get("http_status"),
            error_code=outcome.get("error_code") or "",
            azure_request_id=outcome.get("request_id") or "",
            tracking_id=outcome.get("tracking_id") or "",
            duration_ms=outcome.get("duration_ms"),
            message=outcome.get("message", "")[:2000],
            finished_at=None if pending else timezone.now(),
            lease_until=None,
        )
    )
