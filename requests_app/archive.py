"""The export archive: one ZIP per request, built by streaming, whatever the number of devices.

Layout::

    README.txt            what is inside, in plain words
    manifest.json         the request, sources, api-versions, per-file SHA-256 and size,
                          redactions, identifiers not found or unreachable, data out of reach
    devices/<id>/dps-enrollment.json, dps-registration.json, dps-group-enrollment.json,
                 iothub-device.json, iothub-twin.json, modules/<moduleId>.json
    audit.json            the request's audit events with their chain hashes

Documents come from the ``ExportStore`` already redacted. Each member is written by streaming
(the stored file in chunks, the manifest and audit trail piece by piece), so memory stays flat
however many devices there are; only zipfile's own directory grows, by one small entry per file.
"""

import hashlib
import json
import stat
import textwrap
import zipfile
from datetime import UTC, datetime

from django.utils import timezone

from requests_app.artifacts import store_artifact
from requests_app.azure.dps import DPS_API_VERSION
from requests_app.azure.iothub import HUB_API_VERSION
from requests_app.evidence_store import ExportStore
from requests_app.models import Approval, Artifact, AuditEvent, PlannedDevice

CHUNK = 1 << 16

# Data about a device that the portal has no way to read or remove; every archive and
# certificate lists it as "to be handled by the tenant".
NOT_REACHABLE = (
    {
        "source": "IoT Hub message routing endpoints",
        "detail": "Event Hubs, Service Bus queues and topics, and Storage containers that "
        "received device messages routed by the hub (and the built-in Event Hub-compatible "
        "endpoint while it retains messages).",
    },
    {
        "source": "Event Grid subscribers",
        "detail": "Systems subscribed to IoT Hub or DPS events through Azure Event Grid "
        "(device created, deleted, connected, telemetry) keep their own copies.",
    },
    {
        "source": "Diagnostic logs and Log Analytics",
        "detail": "Azure Monitor resource logs and diagnostic settings that sent device "
        "operations and connections to Log Analytics workspaces, Storage or Event Hubs.",
    },
    {
        "source": "Blobs from import/export jobs",
        "detail": "Storage blobs written by IoT Hub bulk import/export jobs; they can hold "
        "device identities and keys.",
    },
    {
        "source": "File upload storage",
        "detail": "Files devices uploaded through IoT Hub file upload to the linked Storage "
        "account.",
    },
)
HANDLED_BY = "to be handled by the tenant"

DOCUMENT_DESCRIPTIONS = (
    ("dps-enrollment.json", "the device's individual enrollment in DPS, if it had one"),
    ("dps-registration.json", "the DPS registration record: which hub it was assigned, when"),
    (
        "dps-group-enrollment.json",
        "the enrollment group the device provisioned through, if any (it serves other devices too)",
    ),
    ("iothub-device.json", "the device identity in IoT Hub (status, authentication, times)"),
    ("iothub-twin.json", "the device twin: tags, desired and reported properties"),
    ("modules/<moduleId>.json", "each module identity and its module twin, together"),
)


class ArchiveError(Exception):
    """The stored export cannot be archived as it is (a file changed after it was recorded)."""


def build_export_archive(request):
    """Build ``<reference>-export.zip`` and create or replace its ``Artifact``; returns it."""
    store = ExportStore(request)
    generated = timezone.now()

    def write(fh):
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            _write_member(zf, "README.txt", generated, _readme_chunks(request, generated))
            _write_member(
                zf, "manifest.json", generated, _manifest_chunks(request, store, generated)
            )
            for entry in store.entries():
                _copy_member(zf, entry, generated)
            _write_member(zf, "audit.json", generated, _audit_chunks(request))

    return store_artifact(
        request,
        Artifact.Kind.EXPORT_ARCHIVE,
        f"{request.reference}-export.zip",
        "application/zip",
        write,
    )


# --- members ---------------------------------------------------------------------------------
def check_member_name(name):
    """Archive member names are relative, forward-slashed, ASCII, without ``.`` or ``..``."""
    parts = name.split("/")
    if (
        not name.isascii()
        or "\\" in name
        or "\x00" in name
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ArchiveError(f"unsafe archive member name: {name!r}")
    return name


def _zipinfo(name, when):
    info = zipfile.ZipInfo(check_member_name(name), date_time=_zip_time(when))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def _zip_time(when):
    when = when.astimezone(UTC)
    return max(when, datetime(1980, 1, 1, tzinfo=UTC)).timetuple()[:6]


def _write_member(zf, name, when, chunks):
    """Write text chunks as one member, gathering them into blocks of about CHUNK bytes."""
    with zf.open(_zipinfo(name, when), "w", force_zip64=True) as out:
        pending, size = [], 0
        for chunk in chunks:
            pending.append(chunk)
            size += len(chunk)
            if size >= CHUNK:
                out.write("".join(pending).encode("utf-8"))
                pending, size = [], 0
        if pending:
            out.write("".join(pending).encode("utf-8"))


def _copy_member(zf, entry, when):
    """Stream one stored document into the archive, checking it still has its recorded hash."""
    digest = hashlib.sha256()
    with (
        open(entry["abspath"], "rb") as src,
        zf.open(_zipinfo(entry["path"], when), "w", force_zip64=True) as out,
    ):
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != entry["sha256"]:
        raise ArchiveError(f"{entry['path']} changed after it was exported; export it again")


# --- streaming JSON --------------------------------------------------------------------------
def json_chunks(value, level=0):
    """Pretty JSON as a sequence of strings. Lists may be iterators: they are streamed item by
    item, never gathered; everything else is encoded whole."""
    pad = "  " * level
    if isinstance(value, dict) and _streams(value):
        first = True
        for key, item in value.items():
            yield ("{\n" if first else ",\n") + pad + "  " + json.dumps(str(key)) + ": "
            yield from json_chunks(item, level + 1)
            first = False
        yield "\n" + pad + "}"
    elif _is_iterator(value):
        first = True
        for item in value:
            yield ("[\n" if first else ",\n") + pad + "  " + _dumps(item, level + 1)
            first = False
        yield "[]" if first else "\n" + pad + "]"
    else:
        yield _dumps(value, level)


def _dumps(value, level):
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text.replace("\n", "\n" + "  " * level) if level else text


def _streams(value):
    if isinstance(value, dict):
        return any(_streams(item) for item in value.values())
    return _is_iterator(value)


def _is_iterator(value):
    return hasattr(value, "__next__") and hasattr(value, "__iter__")


def _when(value):
    return value.isoformat() if value else None


# --- manifest --------------------------------------------------------------------------------
def request_summary(request):
    return {
        "reference": request.reference,
        "kind": request.kind,
        "regulation": request.regulation,
        "received": _when(request.received_at),
        "due": _when(request.due_at),
        "extended_until": _when(request.extended_until),
        "approved": _when(request.approved_at),
        "status": request.status,
    }


def approvals(request):
    rows = Approval.objects.filter(request=request, decision=Approval.Decision.APPROVED)
    return [
        {
            "approver": row.approver_name,
            "time": _when(row.created_at),
            "via": row.via,
            "plan_version": row.plan_version,
        }
        for row in rows.order_by("created_at", "pk")
    ]


def targets(request):
    """The hosts read, by hostname only: never endpoints, credentials or policies. A hub that
    is not configured (an unreachable identifier) was never called, so it is not listed."""
    devices = PlannedDevice.objects.filter(request=request, state=PlannedDevice.State.FOUND)
    names = {"dps": set(), "iothub": set()}
    for dps, hub in devices.values_list("dps", "hub").distinct().iterator():
        if dps:
            names["dps"].add(dps)
        if hub:
            names["iothub"].add(hub)
    return {kind: sorted(hosts) for kind, hosts in names.items()}


def unresolved(request, state):
    """Plan entries in ``state`` (not found / unreachable), streamed."""
    rows = PlannedDevice.objects.filter(request=request, state=state).order_by("position")
    for device in rows.iterator(chunk_size=500):
        yield {
            "registration_id": device.registration_id,
            "device_id": device.device_id,
            "dps": device.dps,
            "hub": device.hub,
            "note": device.note,
        }


def not_reachable():
    return [{**item, "handled_by": HANDLED_BY} for item in NOT_REACHABLE]


def _manifest_chunks(request, store, generated):
    files = (
        {
            "path": entry["path"],
            "device_id": entry["device_id"],
            "document": entry["document"],
            "sha256": entry["sha256"],
            "bytes": entry["size"],
            "source": entry["source"],
        }
        for entry in store.entries()
    )
    redactions = (
        {"file": entry["path"], "json_paths": entry["redactions"]}
        for entry in store.entries()
        if entry["redactions"]
    )
    manifest = {
        "format": "dsr-portal export archive, version 1",
        "generated": generated.isoformat(),
        "request": request_summary(request),
        "approvals": approvals(request),
        "targets": targets(request),
        "api_versions": {"dps": DPS_API_VERSION, "iothub": HUB_API_VERSION},
        "files": files,
        "redaction": {
            "replacement": "<redacted>",
            "note": "Symmetric keys, TPM endorsement keys and storage root keys are "
            "credentials, not personal data; their values were replaced before storage.",
            "redactions": redactions,
        },
        "not_found": unresolved(request, PlannedDevice.State.NOT_FOUND),
        "unreachable": unresolved(request, PlannedDevice.State.UNREACHABLE),
        "not_reachable_by_portal": not_reachable(),
        "audit": "audit.json",
    }
    yield from json_chunks(manifest)
    yield "\n"


# --- audit trail -----------------------------------------------------------------------------
def _audit_chunks(request):
    events = AuditEvent.objects.filter(request_ref=request.reference).order_by("seq")
    rows = (
        {
            "seq": event.seq,
            "time": event.created_at.isoformat(timespec="microseconds"),
            "actor": event.actor_name,
            "actor_kind": event.actor_kind,
            "action": event.action,
            "details": event.details,
            "hash": event.hash,
            "prev_hash": event.prev_hash,
        }
        for event in events.iterator(chunk_size=500)
    )
    yield from json_chunks(rows)
    yield "\n"


# --- README ----------------------------------------------------------------------------------
def _wrap(text, first, rest):
    return textwrap.fill(text, width=88, initial_indent=first, subsequent_indent=rest) + "\n"


def _readme_chunks(request, generated):
    summary = request_summary(request)
    approved_by = ", ".join(f"{a['approver']} ({a['time']})" for a in approvals(request))
    yield f"Export archive for data subject request {request.reference}\n"
    yield "=" * 72 + "\n\n"
    yield (
        "This archive holds what Azure IoT Hub Device Provisioning Service (DPS) and Azure IoT\n"
        "Hub stored about the devices named in the request, exported read-only by the DSR\n"
        "portal.\n\n"
    )
    yield "The request\n-----------\n"
    yield f"  Reference:   {request.reference}\n"
    yield f"  Kind:        {request.get_kind_display()}\n"
    yield f"  Regulation:  {request.get_regulation_display()}\n"
    yield f"  Received:    {summary['received']}\n"
    yield f"  Due:         {summary['extended_until'] or summary['due']}\n"
    yield f"  Approved:    {summary['approved'] or '-'}\n"
    yield f"  Approved by: {approved_by or '-'}\n"
    yield f"  Generated:   {generated.isoformat()}\n\n"
    yield "What each file is\n-----------------\n"
    yield "  README.txt       this file\n"
    yield (
        "  manifest.json    the request, the DPS instances and hubs read (hostnames), the API\n"
        "                   versions, and for every file its SHA-256, size in bytes, device ID\n"
        "                   and the API call it came from; which values were redacted; the\n"
        "                   identifiers that were not found or could not be reached\n"
    )
    yield "  devices/<device id>/\n"
    for name, description in DOCUMENT_DESCRIPTIONS:
        yield _wrap(f"{name:<28} {description}", "    ", " " * 33)
    yield "  audit.json       every audit event of this request, with its hash-chain values\n\n"
    yield (
        "A device has only the files for what exists: a device with no individual enrollment\n"
        "has no dps-enrollment.json. In folder and file names, characters other than letters,\n"
        'digits, ".", "_" and "-" are percent-encoded (UTF-8), so device "dev#1" is in\n'
        '"devices/dev%231/"; manifest.json gives the original ID of every file.\n\n'
    )
    yield "Keys were redacted\n------------------\n"
    yield (
        "Azure returns device keys with the data. Keys are credentials, not personal data, so\n"
        "every symmetric key (primaryKey, secondaryKey), TPM endorsement key and storage root\n"
        'key was replaced with "<redacted>" before storage. manifest.json lists each file and\n'
        "JSON path that was redacted.\n\n"
    )
    yield "Identifiers not found or not reachable\n--------------------------------------\n"
    yield (
        'manifest.json lists under "not_found" the identifiers found nowhere, and under\n'
        '"unreachable" those whose hub is not configured in the portal; these were not read\n'
        "and have to be handled by hand.\n\n"
    )
    yield "Not reachable by the portal (to be handled by the tenant)\n"
    yield "-" * 57 + "\n"
    yield "The portal cannot read these; copies of device data may exist there:\n"
    for item in NOT_REACHABLE:
        yield _wrap(f"{item['source']}: {item['detail']}", "  - ", "    ")
    yield "\nHow to check the files\n----------------------\n"
    yield (
        "manifest.json gives the SHA-256 of every file. Compare it with your own computation:\n"
        "  Linux:    sha256sum devices/<device id>/iothub-device.json\n"
        "  macOS:    shasum -a 256 devices/<device id>/iothub-device.json\n"
        "  Windows:  Get-FileHash -Algorithm SHA256 devices\\<device id>\\iothub-device.json\n"
        "The SHA-256 of this whole archive is recorded by the portal and shown on the request\n"
        "page; the audit trail records it too.\n"
    )
