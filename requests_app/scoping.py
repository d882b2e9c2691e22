"""The scoping job: read-only look-ups that turn identifiers into a concrete, ordered plan.

For each identifier it finds what exists (individual enrollment and its attestation, the
registration record and its ``assignedHub``, the hub device, its modules) and plans the
operations fulfilment will run, in DESIGN.md's order. Hubs outside the targets file are never
called: their devices are listed as unreachable. The plan's version is a hash of its content,
so an approval is bound to exactly what the approver saw.
"""

import hashlib
import json
import time

from django.db import transaction
from django.utils import timezone

from requests_app.azure import UnconfiguredTarget
from requests_app.models import Operation, PlannedDevice

DPS_PATHS = {
    "enrollment": "/enrollments/{}",
    "registration": "/registrations/{}",
    "group": "/enrollmentGroups/{}",
}


class Finding:
    """What the look-ups found for one identifier (before it becomes a PlannedDevice row)."""

    def __init__(self, identifier):
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
        self.modules = []
        self.state = PlannedDevice.State.FOUND
        self.note = ""


class GroupIndex:
    """registration ID → enrollment group, built once per scoping run and only if needed."""

    def __init__(self, dps):
        self.dps = dps
        self._index = None

    def group_of(self, registration_id):
        if self._index is None:
            self._index = {}
            for group in self.dps.query_enrollment_groups():
                group_id = group.get("enrollmentGroupId")
                for record in self.dps.query_group_registrations(group_id):
                    self._index[record.get("registrationId", "").lower()] = group_id
        return self._index.get(registration_id.lower(), "")


def look_up(identifier, clients, group_indexes):
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


def look_up_dps(found, clients, group_indexes):
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


def look_up_hub(found, clients):
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


class PlanWriter:
    """Turns findings into ordered Operation rows."""

    def __init__(self, request):
        self.request = request
        self.seq = 0
        self.operations = []

    def add(self, device, phase, action, method, host, path, module_id=""):
        self.seq += 1
        self.operations.append(
            Operation(
                request=self.request,
                device=device,
                seq=self.seq,
                phase=phase,
                action=action,
                method=method,
                host=host,
                path=path,
                module_id=module_id,
            )
        )

    def export_ops(self, device):
        dps, hub, reg, dev = device.dps, device.hub, device.registration_id, device.device_id
        export = Operation.Phase.EXPORT
        if device.enrollment == "individual":
            self.add(device, export, "dps.get_enrollment", "GET", dps, f"/enrollments/{reg}")
        if device.enrollment == "group":
            path = f"/enrollmentGroups/{device.group_id}"
            self.add(device, export, "dps.get_enrollment_group", "GET", dps, path)
        if device.has_registration:
            self.add(device, export, "dps.get_registration", "GET", dps, f"/registrations/{reg}")
        if device.has_device and device.state == PlannedDevice.State.FOUND:
            self.add(device, export, "hub.get_device", "GET", hub, f"/devices/{dev}")
            self.add(device, export, "hub.get_twin", "GET", hub, f"/twins/{dev}")
            for module in device.modules:
                path = f"/devices/{dev}/modules/{module}"
                self.add(device, export, "hub.get_module", "GET", hub, path, module)

    def erasure_ops(self, device):
        dps, hub, reg, dev = device.dps, device.hub, device.registration_id, device.device_id
        erase, verify = Operation.Phase.ERASURE, Operation.Phase.VERIFY
        reachable_hub = device.has_device and device.state == PlannedDevice.State.FOUND
        # 1. Stop re-provisioning first, so nothing below can be undone by the device itself.
        if device.enrollment == "individual":
            self.add(device, erase, "dps.delete_enrollment", "DELETE", dps, f"/enrollments/{reg}")
        elif device.enrollment == "group" and self.request.block_reprovisioning:
            path = f"/enrollments/{reg}"
            self.add(device, erase, "dps.block_reprovisioning", "PUT", dps, path)
        # 2. The registration record.
        if device.has_registration:
            path = f"/registrations/{reg}"
            self.add(device, erase, "dps.delete_registration", "DELETE", dps, path)
        # 3. Modules, then the device (which takes its twin with it).
        if reachable_hub:
            for module in device.modules:
                path = f"/devices/{dev}/modules/{module}"
                self.add(device, erase, "hub.delete_module", "DELETE", hub, path, module)
            self.add(device, erase, "hub.delete_device", "DELETE", hub, f"/devices/{dev}")
        # 4. Verify: read everything again.
        if device.enrollment == "individual":
            self.add(device, verify, "verify.enrollment_absent", "GET", dps, f"/enrollments/{reg}")
        elif device.enrollment == "group" and self.request.block_reprovisioning:
            path = f"/enrollments/{reg}"
            self.add(device, verify, "verify.enrollment_disabled", "GET", dps, path)
        if device.has_registration:
            path = f"/registrations/{reg}"
            self.add(device, verify, "verify.registration_absent", "GET", dps, path)
        if reachable_hub:
            for module in device.modules:
                path = f"/devices/{dev}/modules/{module}"
                self.add(device, verify, "verify.module_absent", "GET", hub, path, module)
            self.add(device, verify, "verify.device_absent", "GET", hub, f"/devices/{dev}")


def plan_version(request, devices, operations):
    content = {
        "kind": request.kind,
        "block_reprovisioning": request.block_reprovisioning,
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
        "operations": [[o.seq, o.phase, o.action, o.method, o.host, o.path] for o in operations],
    }
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def build_plan(request, clients, heartbeat=None):
    """Look everything up (read-only), then store devices and operations in one transaction.
    Returns the plan version. ``heartbeat`` is called every few seconds (the caller's claim)."""
    group_indexes = {}
    findings = []
    beat = time.monotonic()
    for identifier in request.identifiers.all():
        findings.append(look_up(identifier, clients, group_indexes))
        if heartbeat is not None and time.monotonic() - beat > 5:
            heartbeat()
            beat = time.monotonic()
    with transaction.atomic():
        request.operations.all().delete()
        request.devices.all().delete()
        devices = []
        for position, found in enumerate(findings, start=1):
            devices.append(
                PlannedDevice(
                    request=request,
                    identifier=found.identifier,
                    position=position,
                    registration_id=found.registration_id,
                    device_id=found.device_id,
                    dps=found.dps,
                    hub=found.hub,
                    state=found.state,
                    enrollment=found.enrollment,
                    attestation=found.attestation,
                    group_id=found.group_id,
                    has_registration=found.has_registration,
                    has_device=found.has_device,
                    modules=found.modules,
                    note=found.note,
                )
            )
        PlannedDevice.objects.bulk_create(devices)
        devices = list(request.devices.order_by("position"))
        writer = PlanWriter(request)
        if request.includes_export:
            for device in devices:
                writer.export_ops(device)
        if request.includes_erasure:
            for device in devices:
                writer.erasure_ops(device)
        Operation.objects.bulk_create(writer.operations, batch_size=1000)
        version = plan_version(request, devices, writer.operations)
        request.plan_version = version
        request.plan_ready_at = timezone.now()
        request.scoping_error = ""
        request.save(update_fields=["plan_version", "plan_ready_at", "scoping_error"])
    return version
