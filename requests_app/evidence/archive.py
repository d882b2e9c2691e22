"""The export archive: one ZIP per request, built by streaming, whatever the number of devices.

Layout::

    README.txt            what is inside, in plain words
    manifest.json         the request, sources, api-versions, SHA-256 and size of every other
                          file, redactions, identifiers not found or unreachable, data out of
                          reach
    history.json          what was done for the request and when, as the subject may see it
                          (``subject_history``: allow-listed, approvers pseudonymised)
    devices/<id>/...      what the export operations read, as the operation registry names
                          and describes it (``operations``: iothub-twin.json, modules/...)

The archive goes to the data subject, a third party to the organisation's staff: it carries no
staff names, email addresses, IP addresses or user agents (the audit trail stays in the portal).

Documents come from the ``ExportStore`` already redacted. Each member is written by streaming,
so memory stays flat however many devices there are; only zipfile's own directory grows, by one
small entry per file. The manifest gives the hash of every file, so the files it precedes are
made first: README.txt in memory (it is small), history.json into a temporary file while it is
hashed (it grows with the operations), the device documents were hashed when they were stored.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import stat
import tempfile
import textwrap
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.utils import timezone

from requests_app.azure.dps import DPS_API_VERSION
from requests_app.azure.iothub import HUB_API_VERSION
from requests_app.dates import iso
from requests_app.evidence.artifacts import store_artifact
from requests_app.evidence.json_stream import json_chunks
from requests_app.evidence.out_of_reach import NOT_REACHABLE, not_reachable
from requests_app.evidence.store import ExportStore
from requests_app.evidence.subject_history import history, subject_approvals
from requests_app.evidence.zipwriter import CompactZipFile
from requests_app.jobs import operations
from requests_app.models import Artifact, DataRequest, PlannedDevice

CHUNK = 1 << 16

# The portal's own files, as README.txt and manifest.json describe them.
PORTAL_FILES = (
    ("README.txt", "this file"),
    (
        "manifest.json",
        "the request, the DPS instances and hubs read (hostnames), the API versions, and for "
        "every other file its SHA-256 and size in bytes (for a device's file also its device ID "
        "and the API call it came from); which values were redacted; the identifiers that were "
        "not found or could not be reached",
    ),
    (
        "history.json",
        "what was done for the request and when: received, planned, each approval, fulfilment "
        "started, and every step on each device (what, on which device, when, with what "
        "outcome)",
    ),
)


class ArchiveError(Exception):
    """The stored export cannot be archived as it is (a file changed after it was recorded)."""


def build_export_archive(data_request: DataRequest) -> Artifact:
    """Build ``<reference>-export.zip`` and create or replace its ``Artifact``; returns it."""
    store = ExportStore(data_request)
    generated = timezone.now()
    tmp_dir = Path(settings.DSR_DATA_DIR) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)

    def write(fh: IO[bytes]) -> None:
        with (
            io.BytesIO() as readme,
            tempfile.TemporaryFile(dir=tmp_dir, prefix=f"{data_request.reference}-") as hist,
        ):
            made = [
                _made_entry(
                    "README.txt", "readme", readme, _readme_chunks(data_request, generated)
                ),
                _made_entry(
                    "history.json", "history", hist, _history_chunks(data_request, generated)
                ),
            ]
            manifest = _manifest_chunks(data_request, store, generated, made)
            # Its memory does not grow with the members (40,302 for 10,000 devices).
            with CompactZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                _copy_into(zf, "README.txt", generated, readme)
                _write_member(zf, "manifest.json", generated, manifest)
                _copy_into(zf, "history.json", generated, hist)
                for entry in store.entries():
                    _copy_member(zf, entry, generated)

    return store_artifact(
        data_request,
        Artifact.Kind.EXPORT_ARCHIVE,
        f"{data_request.reference}-export.zip",
        "application/zip",
        write,
    )


# --- members ---------------------------------------------------------------------------------
def check_member_name(name: str) -> str:
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


def _zipinfo(name: str, when: datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(check_member_name(name), date_time=_zip_time(when))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def _zip_time(when: datetime) -> tuple[int, int, int, int, int, int]:
    when = when.astimezone(UTC)
    return max(when, datetime(1980, 1, 1, tzinfo=UTC)).timetuple()[:6]


def _blocks(chunks: Iterable[str]) -> Iterator[bytes]:
    """UTF-8 blocks of about CHUNK bytes from many small text chunks."""
    pending: list[str] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= CHUNK:
            yield "".join(pending).encode("utf-8")
            pending, size = [], 0
    if pending:
        yield "".join(pending).encode("utf-8")


def _write_member(zf: zipfile.ZipFile, name: str, when: datetime, chunks: Iterable[str]) -> None:
    """Write text chunks as one member."""
    with zf.open(_zipinfo(name, when), "w", force_zip64=True) as out:
        for block in _blocks(chunks):
            out.write(block)


def _copy_into(zf: zipfile.ZipFile, name: str, when: datetime, src: IO[bytes]) -> str:
    """Stream a binary file object into the archive as one member; returns its SHA-256."""
    digest = hashlib.sha256()
    with zf.open(_zipinfo(name, when), "w", force_zip64=True) as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _copy_member(zf: zipfile.ZipFile, entry: dict[str, Any], when: datetime) -> None:
    """Stream one stored document into the archive, checking it still has its recorded hash."""
    with open(entry["abspath"], "rb") as src:
        sha256 = _copy_into(zf, entry["path"], when, src)
    if sha256 != entry["sha256"]:
        raise ArchiveError(f"{entry['path']} changed after it was exported; export it again")


def _made_entry(path: str, document: str, fh: IO[bytes], chunks: Iterable[str]) -> dict[str, Any]:
    """Write text chunks to ``fh`` (rewound afterwards), hashing as they go: the manifest's
    entry for a file the portal made (README.txt, history.json)."""
    digest, size = hashlib.sha256(), 0
    for block in _blocks(chunks):
        digest.update(block)
        size += len(block)
        fh.write(block)
    fh.seek(0)
    return {
        "path": path,
        "device_id": None,
        "document": document,
        "description": dict(PORTAL_FILES)[path],
        "sha256": digest.hexdigest(),
        "bytes": size,
        "source": "made by the DSR portal",
    }


# --- manifest --------------------------------------------------------------------------------
def request_summary(data_request: DataRequest) -> dict[str, str | None]:
    """The request as the archive states it (the archive is made while it is running, so it
    gives no status: history.json says how far it had come)."""
    return {
        "reference": data_request.reference,
        "kind": data_request.kind,
        "regulation": data_request.regulation,
        "received": iso(data_request.received_at),
        "due": iso(data_request.due_at),
        "extended_until": iso(data_request.extended_until),
        "approved": iso(data_request.approved_at),
    }


def targets(data_request: DataRequest) -> dict[str, list[str]]:
    """The hosts read, by hostname only: never endpoints, credentials or policies. A hub that
    is not configured (an unreachable identifier) was never called, so it is not listed."""
    devices = PlannedDevice.objects.filter(request=data_request, state=PlannedDevice.State.FOUND)
    names: dict[str, set[str]] = {"dps": set(), "iothub": set()}
    for dps, hub in devices.values_list("dps", "hub").distinct().iterator():
        if dps:
            names["dps"].add(dps)
        if hub:
            names["iothub"].add(hub)
    return {kind: sorted(hosts) for kind, hosts in names.items()}


def unresolved(data_request: DataRequest, state: str) -> Iterator[dict[str, str]]:
    """Plan entries in ``state`` (not found / unreachable), streamed."""
    rows = PlannedDevice.objects.filter(request=data_request, state=state).order_by("position")
    for device in rows.iterator(chunk_size=500):
        yield {
            "registration_id": device.registration_id,
            "device_id": device.device_id,
            "dps": device.dps,
            "hub": device.hub,
            "note": device.note,
        }


def _manifest_chunks(
    data_request: DataRequest,
    store: ExportStore,
    generated: datetime,
    made: list[dict[str, Any]],
) -> Iterator[str]:
    stored = (
        {
            "path": entry["path"],
            "device_id": entry["device_id"],
            "document": entry["document"],
            "description": operations.document_description(entry["document"]),
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
        "format": "dsr-portal export archive, version 2",
        "generated": generated.isoformat(),
        "request": request_summary(data_request),
        "approvals": subject_approvals(data_request),
        "targets": targets(data_request),
        "api_versions": {"dps": DPS_API_VERSION, "iothub": HUB_API_VERSION},
        # Every file of the archive but this one: the portal's own files, then the documents.
        "files": itertools.chain(made, stored),
        "redaction": {
            "replacement": "<redacted>",
            "note": "Symmetric keys, TPM endorsement keys and storage root keys are "
            "credentials, not personal data; their values were replaced before storage.",
            "redactions": redactions,
        },
        "not_found": unresolved(data_request, PlannedDevice.State.NOT_FOUND),
        "unreachable": unresolved(data_request, PlannedDevice.State.UNREACHABLE),
        "not_reachable_by_portal": not_reachable(),
        "history": "history.json",
    }
    yield from json_chunks(manifest)
    yield "\n"


# --- history -------------------------------------------------------------------------------
def _history_chunks(data_request: DataRequest, generated: datetime) -> Iterator[str]:
    yield from json_chunks(history(data_request, generated))
    yield "\n"


# --- README ----------------------------------------------------------------------------------
def _wrap(text: str, first: str, rest: str) -> str:
    return textwrap.fill(text, width=88, initial_indent=first, subsequent_indent=rest) + "\n"


def _readme_chunks(data_request: DataRequest, generated: datetime) -> Iterator[str]:
    yield f"Export archive for data subject request {data_request.reference}\n"
    yield "=" * 72 + "\n\n"
    yield (
        "This archive holds what Azure IoT Hub Device Provisioning Service (DPS) and Azure IoT\n"
        "Hub stored about the devices named in the request, exported read-only by the DSR\n"
        "portal, and the history of the request up to the time the archive was generated.\n\n"
    )
    yield from _readme_request(data_request, generated)
    yield from _readme_files()
    yield README_NOTES
    yield "Not reachable by the portal (to be handled by the tenant)\n"
    yield "-" * 57 + "\n"
    yield "The portal cannot read these; copies of device data may exist there:\n"
    for item in NOT_REACHABLE:
        yield _wrap(f"{item['source']}: {item['detail']}", "  - ", "    ")
    yield README_CHECKS


def _readme_request(data_request: DataRequest, generated: datetime) -> Iterator[str]:
    summary = request_summary(data_request)
    approved_by = ", ".join(
        f"{a['approver']} ({a['time']})" for a in subject_approvals(data_request)
    )
    yield "The request\n-----------\n"
    yield f"  Reference:   {data_request.reference}\n"
    yield f"  Kind:        {data_request.get_kind_display()}\n"
    yield f"  Regulation:  {data_request.get_regulation_display()}\n"
    yield f"  Received:    {summary['received']}\n"
    yield f"  Due:         {summary['extended_until'] or summary['due']}\n"
    yield f"  Approved:    {summary['approved'] or '-'}\n"
    yield f"  Approved by: {approved_by or '-'}\n"
    yield f"  Generated:   {generated.isoformat()}\n\n"


def _readme_files() -> Iterator[str]:
    """What each file is: the portal's own, then every document the registry declares."""
    yield "What each file is\n-----------------\n"
    for name, description in PORTAL_FILES:
        yield _wrap(f"{name:<16} {description}", "  ", " " * 19)
    yield "  devices/<device id>/\n"
    for entry in operations.documents():
        yield _wrap(f"{entry.document_file():<28} {entry.description}", "    ", " " * 33)
    yield (
        "\nA device has only the files for what exists: a device with no individual enrollment\n"
        "has no dps-enrollment.json. In folder and file names, characters other than letters,\n"
        'digits, ".", "_" and "-" are percent-encoded (UTF-8), so device "dev#1" is in\n'
        '"devices/dev%231/"; manifest.json gives the original ID of every file.\n\n'
    )


README_NOTES = (
    "The history of the request\n--------------------------\n"
    "history.json ends when this archive was generated: for a request to export and then\n"
    "erase, the erasure comes after it. The people who handled the request are not named:\n"
    "approvers appear as Approver 1, Approver 2, in the order they decided. The\n"
    "organisation keeps the complete record of the request (its audit trail) for its\n"
    "auditors.\n\n"
    "Keys were redacted\n------------------\n"
    "Azure returns device keys with the data. Keys are credentials, not personal data, so\n"
    "every symmetric key (primaryKey, secondaryKey), TPM endorsement key and storage root\n"
    'key was replaced with "<redacted>" before storage. manifest.json lists each file and\n'
    "JSON path that was redacted.\n\n"
    "Identifiers not found or not reachable\n--------------------------------------\n"
    'manifest.json lists under "not_found" the identifiers found nowhere, and under\n'
    '"unreachable" those whose hub is not configured in the portal; these were not read\n'
    "and have to be handled by hand.\n\n"
)
README_CHECKS = (
    "\nHow to check the files\n----------------------\n"
    "manifest.json gives the SHA-256 and size in bytes of every other file in this archive,\n"
    "this README.txt and history.json included. Compare it with your own computation:\n"
    "  Linux:    sha256sum README.txt devices/<device id>/iothub-device.json\n"
    "  macOS:    shasum -a 256 README.txt devices/<device id>/iothub-device.json\n"
    "  Windows:  Get-FileHash -Algorithm SHA256 devices\\<device id>\\iothub-device.json\n"
    "The SHA-256 of this whole archive is recorded by the portal and shown on the request\n"
    "page; the portal's audit trail records it too.\n"
)
