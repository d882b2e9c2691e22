"""The operation registry: every Azure operation the portal plans and runs, declared once.

``OPERATIONS`` maps an action name to its ``AzureOperation``, in plan order within each phase:
which devices get it, which host it calls, its method and path, the client call, how the answer
is read, the export document it produces, and the words the pages, the archive and the
certificate use for it. Everything else reads it:

- the planner (``scoping.plan_operations``) turns it into Operation rows, device by device;
- the executor (``executor.execute``) makes the client call and reads the answer;
- the export store and the archive (``evidence.store``, ``evidence.archive``) take the
  document names and their descriptions; the certificate its labels and what an operation
  retains;
- the plan page, the approval page, the request history and the certificate's appendix take
  the readable names (``operation_name``).

Adding an operation is one entry here (its parts: ``operation_types``), plus its client call in
``requests_app/azure/`` and its handler in ``simulator/``.
"""

from __future__ import annotations

from requests_app.azure.dps import DPS_API_VERSION
from requests_app.azure.iothub import HUB_API_VERSION
from requests_app.jobs.operation_types import (
    BLOCKED,
    DELETED,
    READ,
    VERIFIED_ABSENT,
    VERIFIED_DISABLED,
    AzureOperation,
    Outcome,
    block_reprovisioning,
    blocked_group,
    calls,
    group,
    individual,
    module_from_listing,
    module_with_twin,
    on_hub,
    registered,
    superseded,
)
from requests_app.models import Operation

Phase = Operation.Phase
State = Operation.State

# An operation in one of these states has run (or will never run): nothing is left to do.
FINISHED_STATES = (State.DONE, State.ALREADY_ABSENT, State.SKIPPED)
UNFINISHED_STATES = tuple(state for state in State if state not in FINISHED_STATES)

# The api-version of each target kind, as the clients send it.
API_VERSIONS = {"dps": DPS_API_VERSION, "hub": HUB_API_VERSION}


# --- the registry, in plan order within each phase ---------------------------------------------
_ENROLLMENT = "/enrollments/{registration_id}"
_REGISTRATION = "/registrations/{registration_id}"
_DEVICE = "/devices/{device_id}"
_MODULE = "/devices/{device_id}/modules/{module_id}"
_TWIN = "/twins/{device_id}"
_MODULE_TWIN = "/twins/{device_id}/modules/{module_id}"
_BLOCKING_KEPT = (
    "disabled individual enrollment",
    "Blocking enrollment kept so the device cannot provision again through its enrollment "
    "group (Microsoft's documented way to disallow one device of a group). It holds the "
    "registration ID and no other data.",
)

_ENTRIES = (
    # Export: read everything, store each answer as a document.
    AzureOperation(
        "dps.get_enrollment", Phase.EXPORT, when=individual,
        target="dps", bucket="dps", method="GET", path=_ENROLLMENT,
        call=calls("get_enrollment", "registration_id"), outcome=READ,
        name="Read the DPS enrollment", label="Read the DPS enrollment",
        document="dps-enrollment",
        description="the device's individual enrollment in DPS, if it had one",
    ),
    AzureOperation(
        "dps.get_enrollment_group", Phase.EXPORT, when=group,
        target="dps", bucket="dps", method="GET", path="/enrollmentGroups/{group_id}",
        call=calls("get_enrollment_group", "group_id"), outcome=READ,
        name="Read the enrollment group", label="Read the enrollment group",
        document="dps-group-enrollment",
        description="the enrollment group the device provisioned through, if any (it serves "
        "other devices too)",
    ),
    AzureOperation(
        "dps.get_registration", Phase.EXPORT, when=registered,
        target="dps", bucket="dps", method="GET", path=_REGISTRATION,
        call=calls("get_registration", "registration_id"), outcome=READ,
        name="Read the DPS registration record", label="Read the DPS registration record",
        document="dps-registration",
        description="the DPS registration record: which hub it was assigned, when",
    ),
    AzureOperation(
        "hub.get_device", Phase.EXPORT, when=on_hub,
        target="hub", bucket="registry", method="GET", path=_DEVICE,
        call=calls("get_device", "device_id"), outcome=READ,
        name="Read the hub device", label="Read the hub device",
        document="iothub-device",
        description="the device identity in IoT Hub (status, authentication, times)",
    ),
    AzureOperation(
        "hub.get_twin", Phase.EXPORT, when=on_hub,
        target="hub", bucket="twin_read", method="GET", path=_TWIN,
        call=calls("get_twin", "device_id"), outcome=READ,
        name="Read the device twin", label="Read the device twin",
        document="iothub-twin",
        description="the device twin: tags, desired and reported properties",
    ),
    # Each module's identity comes from one listing of the device's modules (one registry call
    # per device, shared by its modules' operations), its twin from the twin bucket.
    AzureOperation(
        "hub.read_module", Phase.EXPORT, when=on_hub,
        target="hub", bucket="twin_read", once_per_device=("registry",), method="GET",
        path=_MODULE_TWIN, call=module_from_listing, outcome=READ,
        name="Read module {module} and its twin", label="Read the modules and their twins",
        summary="Read the modules and their twins", per_module=True,
        document="modules",
        description="each module identity and its module twin, together",
    ),
    # Superseded by hub.read_module (one GET per module identity); kept so that plans made
    # before still run. It writes the same document.
    AzureOperation(
        "hub.get_module", Phase.EXPORT, when=superseded,
        target="hub", bucket="registry", spends=("registry", "twin_read"), method="GET",
        path=_MODULE, call=module_with_twin, outcome=READ,
        name="Read module {module} and its twin", label="Read the modules and their twins",
        summary="Read the modules and their twins", per_module=True,
        document="modules",
        description="each module identity and its module twin, together",
    ),
    # Erasure, in a safe order: stop re-provisioning first, so nothing below can be undone by
    # the device itself; then the registration record; then the device, which takes its twin,
    # its modules and their twins with it: one identity-registry call per device (README, "What
    # one DELETE takes with it"). Module twins are checked below, so a module left behind would
    # show as not verified, never as erased.
    AzureOperation(
        "dps.delete_enrollment", Phase.ERASURE, when=individual,
        target="dps", bucket="dps", method="DELETE", path=_ENROLLMENT,
        call=calls("delete_enrollment", "registration_id"), outcome=DELETED,
        name="Delete the DPS enrollment", label="Deleted the DPS enrollment",
    ),
    AzureOperation(
        "dps.block_reprovisioning", Phase.ERASURE, when=blocked_group,
        target="dps", bucket="dps", spends=("dps", "dps"), method="PUT", path=_ENROLLMENT,
        call=block_reprovisioning, outcome=BLOCKED,
        name="Add a disabled enrollment to stop re-provisioning",
        label="Added a disabled enrollment to stop re-provisioning",
        retains=_BLOCKING_KEPT,
    ),
    AzureOperation(
        "dps.delete_registration", Phase.ERASURE, when=registered,
        target="dps", bucket="dps", method="DELETE", path=_REGISTRATION,
        call=calls("delete_registration", "registration_id"), outcome=DELETED,
        name="Delete the DPS registration record", label="Deleted the DPS registration record",
    ),
    AzureOperation(
        "hub.delete_module", Phase.ERASURE, when=superseded,
        target="hub", bucket="registry", method="DELETE", path=_MODULE,
        call=calls("delete_module", "device_id", "module_id"), outcome=DELETED,
        name="Delete module {module}", label="Deleted the modules",
        summary="Delete the modules", per_module=True,
    ),
    AzureOperation(
        "hub.delete_device", Phase.ERASURE, when=on_hub,
        target="hub", bucket="registry", method="DELETE", path=_DEVICE,
        call=calls("delete_device", "device_id"), outcome=DELETED,
        name="Delete the hub device (with its twin and modules)",
        label="Deleted the hub device (with its twin and modules)",
    ),
    # Verify: read everything again.
    AzureOperation(
        "verify.enrollment_absent", Phase.VERIFY, when=individual,
        target="dps", bucket="dps", method="GET", path=_ENROLLMENT,
        call=calls("get_enrollment", "registration_id"), outcome=VERIFIED_ABSENT,
        name="Check the DPS enrollment is gone", label="Checked the DPS enrollment is gone",
    ),
    AzureOperation(
        "verify.enrollment_disabled", Phase.VERIFY, when=blocked_group,
        target="dps", bucket="dps", method="GET", path=_ENROLLMENT,
        call=calls("get_enrollment", "registration_id"), outcome=VERIFIED_DISABLED,
        name="Check the enrollment is disabled", label="Checked the enrollment is disabled",
    ),
    AzureOperation(
        "verify.registration_absent", Phase.VERIFY, when=registered,
        target="dps", bucket="dps", method="GET", path=_REGISTRATION,
        call=calls("get_registration", "registration_id"), outcome=VERIFIED_ABSENT,
        name="Check the registration record is gone",
        label="Checked the registration record is gone",
    ),
    # The device and each module are checked through their twins: a twin exists exactly as long
    # as its identity (Azure: "implicitly created and deleted" with it), the read is consistent
    # with the registry at once (unlike the query store), and twin reads have their own large
    # bucket (100/s on S1), so the registry's calls stay for the DELETEs.
    AzureOperation(
        "verify.module_twin_absent", Phase.VERIFY, when=on_hub,
        target="hub", bucket="twin_read", method="GET", path=_MODULE_TWIN,
        call=calls("get_module_twin", "device_id", "module_id"), outcome=VERIFIED_ABSENT,
        name="Check module {module} is gone (its twin answers 404)",
        label="Checked the modules are gone (their twins answer 404)",
        summary="Check the modules are gone", per_module=True,
    ),
    AzureOperation(
        "verify.device_twin_absent", Phase.VERIFY, when=on_hub,
        target="hub", bucket="twin_read", method="GET", path=_TWIN,
        call=calls("get_twin", "device_id"), outcome=VERIFIED_ABSENT,
        name="Check the hub device is gone (its twin answers 404)",
        label="Checked the hub device is gone (its twin answers 404)",
    ),
    # Planned before the device's DELETE took its modules with it, checks read twins and a
    # device's modules were listed once; kept so that plans made then still run
    # (``superseded``: never planned now).
    AzureOperation(
        "verify.module_absent", Phase.VERIFY, when=superseded,
        target="hub", bucket="registry", method="GET", path=_MODULE,
        call=calls("get_module", "device_id", "module_id"), outcome=VERIFIED_ABSENT,
        name="Check module {module} is gone", label="Checked the modules are gone",
        summary="Check the modules are gone", per_module=True,
    ),
    AzureOperation(
        "verify.device_absent", Phase.VERIFY, when=superseded,
        target="hub", bucket="registry", method="GET", path=_DEVICE,
        call=calls("get_device", "device_id"), outcome=VERIFIED_ABSENT,
        name="Check the hub device is gone", label="Checked the hub device is gone",
    ),
)  # fmt: skip

OPERATIONS = {entry.action: entry for entry in _ENTRIES}


# --- reading it --------------------------------------------------------------------------------
# Each reads ``OPERATIONS`` when called, never a copy made at import.
def in_phase(phase: str) -> list[AzureOperation]:
    """The entries of ``phase``, in plan order."""
    return [entry for entry in OPERATIONS.values() if entry.phase == phase]


def plan_order() -> dict[str, int]:
    """``{action: position}`` for sorting by plan order: by phase, then registry order."""
    ordered = [entry.action for phase in Phase for entry in in_phase(phase)]
    return {action: index for index, action in enumerate(ordered)}


def operation_name(action: str, module_id: str = "") -> str:
    """The readable name of an action, ``{module}`` filled in; an unknown action in words."""
    entry = OPERATIONS.get(action)
    if entry is None:
        return action.replace("_", " ").replace(".", ": ")
    return entry.display_name(module_id)


def label_of(action: str) -> str:
    """The certificate's label of an action (an unknown action in words)."""
    entry = OPERATIONS.get(action)
    return entry.label if entry is not None else operation_name(action)


def outcome_for(action: str) -> Outcome:
    """How ``action``'s answer was read (an unknown action reads as a read)."""
    entry = OPERATIONS.get(action)
    return entry.outcome if entry is not None else READ


def documents() -> list[AzureOperation]:
    """The entries that store a document, in plan order: one per document (a superseded entry
    that writes the same document as its successor is not listed twice)."""
    seen: set[tuple[str, bool]] = set()
    listed = []
    for entry in OPERATIONS.values():
        key = (entry.document, entry.per_module)
        if entry.document and key not in seen:
            seen.add(key)
            listed.append(entry)
    return listed


def document_description(name: str) -> str:
    """The description of a stored document (``iothub-twin``, ``modules/<id>``), or ''."""
    folder, slash, _ = name.partition("/")
    for entry in documents():
        if entry.document == folder and entry.per_module == bool(slash):
            return entry.description
    return ""
