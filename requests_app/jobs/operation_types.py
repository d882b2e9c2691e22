"""What an entry of the operation registry (``operations``) is made of: the entry itself
(``AzureOperation``), how an answer is read (``Outcome``), which planned devices get an operation
(``individual``, ``on_hub``, ...) and the client calls that are more than one client method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from requests_app.models import DataRequest, Operation, PlannedDevice

if TYPE_CHECKING:
    from requests_app.azure import AzureResponse, DpsClient, IotHubClient

State = Operation.State

# How an answer is read: (response) -> (Operation.State, message).
Reader = Callable[["AzureResponse"], tuple[str, str]]
# Which planned devices get an operation: (device, request) -> bool.
When = Callable[[PlannedDevice, DataRequest], bool]
# A client call: (the target's DpsClient or IotHubClient, ids_of) -> response. The client is
# Any: each entry's call takes the one client its target has.
ClientCall = Callable[[Any, dict[str, str]], "AzureResponse"]


# --- how an answer is read ---------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """How an operation's answer is read: ``read(response) -> (state, message)``, and the plan
    page's words for it once done, or once Azure answered 404 (``already_absent``)."""

    read: Reader
    done: str
    absent: str = "Already absent"


def _expects_present(missing: str) -> Reader:
    """A read or a DELETE: 404 means there is nothing to do (the operation is repeatable)."""

    def read(response: AzureResponse) -> tuple[str, str]:
        if response.found:
            return State.DONE, ""
        return State.ALREADY_ABSENT, missing

    return read


def _verify_absent(response: AzureResponse) -> tuple[str, str]:
    if response.found:
        return State.FAILED, "still present after deletion"
    return State.DONE, "verified absent (404)"


def _verify_disabled(response: AzureResponse) -> tuple[str, str]:
    status = (response.data or {}).get("provisioningStatus") if response.found else None
    if status == "disabled":
        return State.DONE, "verified: enrollment is disabled"
    return State.FAILED, f"enrollment not disabled ({status})"


def _blocked(response: AzureResponse) -> tuple[str, str]:
    return State.DONE, "disabled individual enrollment retained to block it"


READ = Outcome(_expects_present("not present any more"), done="Read", absent="Not present any more")
DELETED = Outcome(_expects_present("already absent"), done="Deleted")
BLOCKED = Outcome(_blocked, done="Disabled enrollment in place")
VERIFIED_ABSENT = Outcome(_verify_absent, done="Verified absent")
VERIFIED_DISABLED = Outcome(_verify_disabled, done="Verified disabled")


# --- which devices get an operation ------------------------------------------------------------
def individual(device: PlannedDevice, data_request: DataRequest) -> bool:
    return device.enrollment == "individual"


def group(device: PlannedDevice, data_request: DataRequest) -> bool:
    return device.enrollment == "group"


def blocked_group(device: PlannedDevice, data_request: DataRequest) -> bool:
    """A group device whose request asks to stop it provisioning again."""
    return device.enrollment == "group" and data_request.block_reprovisioning


def registered(device: PlannedDevice, data_request: DataRequest) -> bool:
    return device.has_registration


def superseded(device: PlannedDevice, data_request: DataRequest) -> bool:
    """Never planned any more: the entry stays so that plans made before still run."""
    return False


def on_hub(device: PlannedDevice, data_request: DataRequest) -> bool:
    """The device exists on a configured hub."""
    return device.has_device and device.state == PlannedDevice.State.FOUND


# --- client calls ------------------------------------------------------------------------------
def ids_of(device: PlannedDevice, module_id: str = "") -> dict[str, str]:
    """What a path template and a client call may name."""
    return {
        "registration_id": device.registration_id,
        "device_id": device.device_id,
        "group_id": device.group_id,
        "module_id": module_id,
    }


def calls(method: str, *names: str) -> ClientCall:
    """The client call ``client.<method>(<the IDs named>)``."""

    def call(client: DpsClient | IotHubClient, ids: dict[str, str]) -> AzureResponse:
        response: AzureResponse = getattr(client, method)(*(ids[name] for name in names))
        return response

    call.__qualname__ = f"{method}({', '.join(names)})"
    return call


def module_with_twin(client: IotHubClient, ids: dict[str, str]) -> AzureResponse:
    """A module's identity and its module twin, as one document."""
    response = client.get_module(ids["device_id"], ids["module_id"])
    if not response.found:
        return response
    twin = client.get_module_twin(ids["device_id"], ids["module_id"])
    data = {"module": response.data, "twin": twin.data if twin.found else None}
    return dataclasses.replace(response, data=data)


def module_from_listing(client: IotHubClient, ids: dict[str, str]) -> AzureResponse:
    """A module's identity, from one listing of its device's modules (``list_modules_once``),
    and its module twin, as one document. The answer is the twin read's; a module in neither
    is gone since planning (404)."""
    device_id, module_id = ids["device_id"], ids["module_id"]
    listing = client.list_modules_once(device_id)
    listed = listing.data if listing.found and isinstance(listing.data, list) else []
    module = next(
        (m for m in listed if isinstance(m, dict) and m.get("moduleId") == module_id), None
    )
    twin = client.get_module_twin(device_id, module_id)
    if module is None and not twin.found:
        return twin
    data = {"module": module, "twin": twin.data if twin.found else None}
    return dataclasses.replace(twin, status=200, data=data)


def block_reprovisioning(client: DpsClient, ids: dict[str, str]) -> AzureResponse:
    """Put a disabled individual enrollment in place for a group device (Microsoft's way to
    keep one device of a group out); one already disabled is left as it is."""
    registration_id = ids["registration_id"]
    existing = client.get_enrollment(registration_id)
    data = existing.data or {}
    if existing.found and data.get("provisioningStatus") == "disabled":
        return existing
    if existing.found:
        body = {**data, "provisioningStatus": "disabled"}
        return client.create_or_update_enrollment(body, etag=data.get("etag"))
    body = {
        "registrationId": registration_id,
        "attestation": {"type": "symmetricKey"},
        "provisioningStatus": "disabled",
        "capabilities": {"iotEdge": False},
    }
    return client.create_or_update_enrollment(body, etag=None)


# --- the entry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AzureOperation:
    """One Azure operation. ``path`` and ``call`` name the IDs of ``ids_of``; ``name`` (the plan
    page) may hold ``{module}``; ``document`` is a file in ``devices/<id>/`` (without ``.json``),
    or for a per-module operation a folder with one file per module."""

    action: str
    phase: str
    target: str  # "dps" or "hub": which host it calls (the device's DPS, or its hub)
    bucket: str  # the pacing bucket its client call spends (``azure.pacing.KINDS``)
    method: str
    path: str
    when: When  # which planned devices get it
    call: ClientCall
    outcome: Outcome
    name: str  # for the plan page, the history and the certificate's appendix
    label: str  # for the certificate: what was done, for a person
    summary: str = ""  # for the plan's summary, where modules are counted together
    per_module: bool = False  # once per module of the device
    document: str = ""  # export: what it stores
    description: str = ""  # that document in README.txt and manifest.json
    retains: tuple[str, ...] = ()  # (what, why) the certificate lists as kept once it is done
    spends: tuple[str, ...] = ()  # every call's bucket, when the call is more than ``bucket``
    # Calls made once per device however many of its operations there are (a shared listing).
    once_per_device: tuple[str, ...] = ()

    def buckets(self) -> tuple[str, ...]:
        """The bucket of each HTTP call one run makes (retries aside): what the plan costs."""
        return self.spends or (self.bucket,)

    def module_ids(self, device: PlannedDevice, data_request: DataRequest) -> list[str]:
        """The module IDs to plan it for ("" for a device-level operation); [] if none."""
        if not self.when(device, data_request):
            return []
        return list(device.modules) if self.per_module else [""]

    def host_for(self, device: PlannedDevice) -> str:
        return device.dps if self.target == "dps" else device.hub

    def path_for(self, device: PlannedDevice, module_id: str = "") -> str:
        return self.path.format(**ids_of(device, module_id))

    def display_name(self, module_id: str = "") -> str:
        return self.name.format(module=module_id or "?")

    def summary_name(self) -> str:
        return self.summary or self.display_name()

    def document_name(self, module_id: str = "") -> str:
        """The export store's name for what it read: ``iothub-twin``, ``modules/<id>``."""
        return f"{self.document}/{module_id}" if self.per_module else self.document

    def document_file(self) -> str:
        """As README.txt names it: ``iothub-twin.json``, ``modules/<moduleId>.json``."""
        return f"{self.document}/<moduleId>.json" if self.per_module else f"{self.document}.json"
