"""The scoping job: read-only look-ups that turn identifiers into a concrete, ordered plan.

For each identifier it finds what exists (individual enrollment and its attestation, the
registration record and its ``assignedHub``, the hub device, its modules) and plans the
operations fulfilment will run, as the operation registry (``operations``) declares them. Hubs
outside the targets file are never called: their devices are listed as unreachable. The plan's
version is a hash of its content, so an approval is bound to exactly what the approver saw.

The hub is asked in batches, not device by device, so that the identity registry's small bucket
(100 calls a minute per S1 unit) is left for the erasure's DELETEs: per hub, one query per up to
100 devices lists the devices (``SELECT * FROM devices WHERE deviceId IN [...]``) and one their
modules. The query store lags the registry by seconds, so "not listed" is never taken as
"absent": a device the query did not list is read through its twin (its own large bucket), and
its modules, when it turns out to exist, by one registry list.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from requests_app.azure import Permanent, UnconfiguredTarget
from requests_app.jobs import operations
from requests_app.models import DataRequest, Operation, PlannedDevice, RequestIdentifier

if TYPE_CHECKING:
    from requests_app.azure import AzureClients, DpsClient, IotHubClient
    from requests_app.jobs.operation_types import AzureOperation


class Finding:
    """What the look-ups found for one identifier (before it becomes a PlannedDevice row)."""

    def __init__(self, identifier: RequestIdentifier) -> None:
        self.identifier = identifier
        self.registration_id = identifier.registration_id
        self.device_id = identifier.device_id
        self.hub = identifier.hub
        self.dps = ""
        self.enrollment = ""
        self.attestation = ""
        self.group_id = ""
        self.has_registration = False
        self.has_device = False
        self.modules: list[str] = []
        self.state: str = PlannedDevice.State.FOUND
        self.note = ""

    def planned_device(self, data_request: DataRequest, position: int) -> PlannedDevice:
        return PlannedDevice(
            request=data_request,
            identifier=self.identifier,
            position=position,
            registration_id=self.registration_id,
            device_id=self.device_id,
            dps=self.dps,
            hub=self.hub,
            state=self.state,
            enrollment=self.enrollment,
            attestation=self.attestation,
            group_id=self.group_id,
            has_registration=self.has_registration,
            has_device=self.has_device,
            modules=self.modules,
            note=self.note,
        )


class GroupIndex:
    """registration ID → enrollment group, built once per scoping run and only if needed."""

    def __init__(self, dps: DpsClient) -> None:
        self.dps = dps
        self._index: dict[str, str] | None = None

    def group_of(self, registration_id: str) -> str:
        if self._index is None:
            self._index = {}
            for group in self.dps.query_enrollment_groups():
                group_id = group.get("enrollmentGroupId")
                for record in self.dps.query_group_registrations(group_id):
                    self._index[record.get("registrationId", "").lower()] = group_id
        return self._index.get(registration_id.lower(), "")


# A query names at most this many devices, in at most this many characters of IDs: one page
# each, well inside the ~8 KB Azure accepts (a query it refuses anyway is split in two).
QUERY_MAX_IDS = 100
QUERY_MAX_CHARS = 4000


def look_up_all(
    identifiers: Sequence[RequestIdentifier],
    clients: AzureClients,
    heartbeat: Callable[[], None] | None = None,
) -> list[Finding]:
    """What exists for each identifier: DPS one identifier at a time, then each hub in batches."""
    group_indexes: dict[str, GroupIndex] = {}
    findings = [Finding(identifier) for identifier in identifiers]
    beat = _Beat(heartbeat)
    for found in findings:
        if found.registration_id:
            look_up_dps(found, clients, group_indexes)
        beat()
    by_hub: dict[str, list[Finding]] = {}
    for found in findings:
        if found.hub:
            by_hub.setdefault(found.hub, []).append(found)
    for hostname, on_hub in by_hub.items():
        look_up_hub(hostname, on_hub, clients, beat)
    for found in findings:
        if not (found.enrollment or found.has_registration or found.has_device) and (
            found.state == PlannedDevice.State.FOUND
        ):
            found.state = PlannedDevice.State.NOT_FOUND
            found.note = "Found in no configured DPS or hub"
    return findings


class _Beat:
    """Calls ``heartbeat`` (the caller's claim) every few seconds of a long look-up."""

    def __init__(self, heartbeat: Callable[[], None] | None) -> None:
        self.heartbeat = heartbeat
        self.last = time.monotonic()

    def __call__(self) -> None:
        if self.heartbeat is not None and time.monotonic() - self.last > 5:
            self.heartbeat()
            self.last = time.monotonic()


def look_up_dps(
    found: Finding, clients: AzureClients, group_indexes: dict[str, GroupIndex]
) -> None:
    for hostname in clients.targets.dps:
        dps = clients.dps(hostname)
        enrollment = dps.get_enrollment(found.registration_id)
        registration = dps.get_registration(found.registration_id)
        if not (enrollment.found or registration.found):
            continue
        found.dps = hostname
        if enrollment.found:
            found.enrollment = "individual"
            found.attestation = (enrollment.data or {}).get("attestation", {}).get("type", "")
        if registration.found:
            found.has_registration = True
            data = registration.data or {}
            found.hub = found.hub or data.get("assignedHub", "") or ""
            found.device_id = found.device_id or data.get("deviceId", "") or ""
            if not enrollment.found:
                index = group_indexes.setdefault(hostname, GroupIndex(dps))
                found.group_id = index.group_of(found.registration_id)
                found.enrollment = "group" if found.group_id else ""
        return


def look_up_hub(
    hostname: str, findings: Sequence[Finding], clients: AzureClients, beat: Callable[[], None]
) -> None:
    """Which of ``findings`` have a device on hub ``hostname``, and its modules."""
    for found in findings:
        found.device_id = found.device_id or found.registration_id
    try:
        hub = clients.hub(hostname)
    except UnconfiguredTarget:
        for found in findings:
            found.state = PlannedDevice.State.UNREACHABLE
            found.note = (
                f"The device is on {hostname}, which is not a configured target: "
                "the portal will not call it; handle it in that hub by hand."
            )
        return
    device_ids = sorted({found.device_id for found in findings})
    listed = {str(t.get("deviceId", "")) for t in listed_by_query(hub, "devices", device_ids, beat)}
    modules: dict[str, list[str]] = {}
    for twin in listed_by_query(hub, "devices.modules", sorted(listed), beat):
        modules.setdefault(twin.get("deviceId", ""), []).append(twin.get("moduleId", ""))
    for found in findings:
        if found.device_id in listed:
            found.has_device = True
            found.modules = sorted(modules.get(found.device_id, []))
        elif hub.get_twin(found.device_id).found:  # not listed (yet): the twin is current
            found.has_device = True
            answer = hub.list_modules(found.device_id)
            found.modules = sorted(m.get("moduleId", "") for m in (answer.data or []))
        beat()


def listed_by_query(
    hub: IotHubClient, collection: str, device_ids: Sequence[str], beat: Callable[[], None]
) -> list[dict[str, Any]]:
    """The twins the query store lists in ``collection`` ("devices" or "devices.modules") for
    ``device_ids``, a query per batch. An ID a query cannot carry, or a batch Azure refuses as a
    bad query down to one ID, is left out: its device is then read by GET, never assumed gone."""
    pending = _batches([d for d in device_ids if "'" not in d and "\\" not in d])
    twins: list[dict[str, Any]] = []
    while pending:
        batch = pending.pop()
        ids = ", ".join(f"'{device_id}'" for device_id in batch)
        # Not SQL: IoT Hub's query language. IDs holding ' or \ were left out above, so no
        # value can end its string literal; the collection is one of two constants.
        sql = f"SELECT * FROM {collection} WHERE deviceId IN [{ids}]"  # nosec B608 # noqa: S608
        try:
            twins.extend(hub.query(sql, page_size=QUERY_MAX_IDS))
        except Permanent as exc:
            if exc.status != 400 or len(batch) == 1:
                if exc.status != 400:
                    raise
                continue
            pending += [batch[: len(batch) // 2], batch[len(batch) // 2 :]]
        beat()
    return twins


def _batches(device_ids: Sequence[str]) -> list[list[str]]:
    batches: list[list[str]] = []
    size = 0
    for device_id in device_ids:
        if (
            not batches
            or len(batches[-1]) >= QUERY_MAX_IDS
            or size + len(device_id) > QUERY_MAX_CHARS
        ):
            batches.append([])
            size = 0
        batches[-1].append(device_id)
        size += len(device_id) + 4
    return batches


def plan_operations(data_request: DataRequest, devices: Sequence[PlannedDevice]) -> list[Operation]:
    """The plan's Operation rows (not saved), numbered: every device's export reads, then every
    device's erasure and its verification, each device's in registry order (``operations``)."""
    phases: list[tuple[str, ...]] = []
    if data_request.includes_export:
        phases.append((Operation.Phase.EXPORT,))
    if data_request.includes_erasure:
        phases.append((Operation.Phase.ERASURE, Operation.Phase.VERIFY))
    planned: list[Operation] = []
    for group in phases:
        entries = [entry for phase in group for entry in operations.in_phase(phase)]
        for device in devices:
            for entry in entries:
                for module_id in entry.module_ids(device, data_request):
                    planned.append(
                        _operation(data_request, device, entry, module_id, len(planned) + 1)
                    )
    return planned


def _operation(
    data_request: DataRequest,
    device: PlannedDevice,
    entry: AzureOperation,
    module_id: str,
    seq: int,
) -> Operation:
    return Operation(
        request=data_request,
        device=device,
        seq=seq,
        phase=entry.phase,
        action=entry.action,
        method=entry.method,
        host=entry.host_for(device),
        path=entry.path_for(device, module_id),
        module_id=module_id,
    )


def plan_version(
    data_request: DataRequest, devices: Sequence[PlannedDevice], planned: Sequence[Operation]
) -> str:
    content = {
        "kind": data_request.kind,
        "block_reprovisioning": data_request.block_reprovisioning,
        "devices": [
            [
                d.position,
                d.registration_id,
                d.device_id,
                d.dps,
                d.hub,
                d.state,
                d.enrollment,
                d.group_id,
                d.has_registration,
                d.has_device,
                d.modules,
            ]
            for d in devices
        ],
        "operations": [[o.seq, o.phase, o.action, o.method, o.host, o.path] for o in planned],
    }
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def build_plan(
    data_request: DataRequest,
    clients: AzureClients,
    heartbeat: Callable[[], None] | None = None,
) -> str:
    """Look everything up (read-only), then store devices and operations in one transaction.
    Returns the plan version. ``heartbeat`` is called every few seconds (the caller's claim)."""
    findings = look_up_all(list(data_request.identifiers.all()), clients, heartbeat)
    with transaction.atomic():
        data_request.operations.all().delete()
        data_request.devices.all().delete()
        devices = [
            found.planned_device(data_request, position)
            for position, found in enumerate(findings, start=1)
        ]
        PlannedDevice.objects.bulk_create(devices)
        devices = list(data_request.devices.order_by("position"))
        planned = plan_operations(data_request, devices)
        Operation.objects.bulk_create(planned, batch_size=1000)
        version = plan_version(data_request, devices, planned)
        data_request.plan_version = version
        data_request.plan_ready_at = timezone.now()
        data_request.scoping_error = ""
        data_request.save(update_fields=["plan_version", "plan_ready_at", "scoping_error"])
    return version
