"""The scoping job: read-only look-ups that turn identifiers into a concrete, ordered plan.

For each identifier it finds what exists (individual enrollment and its attestation, the
registration record and its ``assignedHub``, the hub device, its modules) and plans the
operations fulfilment will run, as the operation registry (``operations``) declares them. Hubs
outside the targets file are never called: their devices are listed as unreachable. The plan's
version is a hash of its content, so an approval is bound to exactly what the approver saw.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from requests_app.azure import UnconfiguredTarget
from requests_app.jobs import operations
from requests_app.models import DataRequest, Operation, PlannedDevice, RequestIdentifier

if TYPE_CHECKING:
    from requests_app.azure import AzureClients, DpsClient
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


def look_up(
    identifier: RequestIdentifier, clients: AzureClients, group_indexes: dict[str, GroupIndex]
) -> Finding:
    found = Finding(identifier)
    if identifier.registration_id:
        look_up_dps(found, clients, group_indexes)
    if found.hub:
        look_up_hub(found, clients)
    if not (found.enrollment or found.has_registration or found.has_device) and (
        found.state == PlannedDevice.State.FOUND
    ):
        found.state = PlannedDevice.State.NOT_FOUND
        found.note = "Found in no configured DPS or hub"
    return found


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


def look_up_hub(found: Finding, clients: AzureClients) -> None:
    device_id = found.device_id or found.registration_id
    try:
        hub = clients.hub(found.hub)
    except UnconfiguredTarget:
        found.state = PlannedDevice.State.UNREACHABLE
        found.device_id = device_id
        found.note = (
            f"The device is on {found.hub}, which is not a configured target: "
            "the portal will not call it; handle it in that hub by hand."
        )
        return
    device = hub.get_device(device_id)
    if device.found:
        found.device_id = device_id
        found.has_device = True
        modules = hub.list_modules(device_id)
        found.modules = sorted(m.get("moduleId", "") for m in (modules.data or []))


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
    group_indexes: dict[str, GroupIndex] = {}
    findings: list[Finding] = []
    beat = time.monotonic()
    for identifier in data_request.identifiers.all():
        findings.append(look_up(identifier, clients, group_indexes))
        if heartbeat is not None and time.monotonic() - beat > 5:
            heartbeat()
            beat = time.monotonic()
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
