"""Where fulfilment puts exported JSON until the archive is built.

Layout, under ``DSR_DATA_DIR/work/<reference>/``, one file per document an export operation
declares in the registry (``operations``: ``document``)::

    devices/<safe device id>/dps-enrollment.json
    devices/<safe device id>/dps-enrollment.json.meta     <- index entry for the file beside it
    devices/<safe device id>/modules/<safe module id>.json   <- a per-module document
    ...

Every document is redacted before it touches the disk, written pretty with sorted keys, and
moved into place atomically, so a worker that dies mid-write leaves either the old file or the
new one, and writing the same document again is harmless. Each data file has its own small index
entry (``.meta``) rather than one shared index, so workers writing different devices or files at
the same time never race on a read-modify-write.

Device and module IDs may hold ``# * ? : ' $ %`` and more: names on disk (and in the archive)
percent-encode everything outside ``[A-Za-z0-9._-]``, a leading dot included (no ``..``, no
hidden files), and very long names are shortened with a hash, so names are safe and distinct.
The original ID is kept in the index entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from requests_app.evidence.redaction import redact
from requests_app.jobs import operations

if TYPE_CHECKING:
    from requests_app.models import DataRequest

DATA_SUFFIX = ".json"
META_SUFFIX = ".meta"
# Keep names well inside NAME_MAX (255 bytes) once ".json.meta" is added.
MAX_NAME = 180
_SAFE = re.compile(r"[A-Za-z0-9._-]")
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")


class EvidenceError(ValueError):
    """A name or reference the store will not turn into a path."""


def safe_name(identifier: object) -> str:
    """A file-system and archive safe, distinct name for a device or module ID.

    ``%`` itself is encoded, so the mapping is one-to-one; names longer than ``MAX_NAME`` keep a
    readable prefix and end in ``~`` plus a hash of the full ID (``~`` never survives encoding).
    """
    identifier = str(identifier)
    if not identifier:
        raise EvidenceError("an empty ID cannot name a file")
    encoded = "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
        for ch in identifier
    )
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    if len(encoded) > MAX_NAME:
        digest = hashlib.sha256(identifier.encode("utf-8")).hexdigest()[:32]
        prefix = encoded[: MAX_NAME - 33]
        # Do not cut a %XX sequence in half.
        prefix = re.sub(r"%[0-9A-F]?$", "", prefix)
        encoded = f"{prefix}~{digest}"
    return encoded


def check_reference(reference: str) -> str:
    if not _REFERENCE.fullmatch(reference or ""):
        raise EvidenceError(f"not a request reference: {reference!r}")
    return reference


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 16) -> tuple[str, int]:
    """``(hex SHA-256, size)`` of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _regular_files(directory: str) -> set[str]:
    with os.scandir(directory) as it:
        return {entry.name for entry in it if entry.is_file(follow_symlinks=False)}


def _folder_files(base: str, folder: str) -> set[str]:
    """``<folder>/<name>`` of the regular files in a device's per-module folder (no symlinks)."""
    path = os.path.join(base, folder)
    if os.path.islink(path) or not os.path.isdir(path):
        return set()
    return {f"{folder}/{name}" for name in _regular_files(path)}


def _documents() -> list[str]:
    """The device-level documents, in registry order (read at call time)."""
    return [entry.document for entry in operations.documents() if not entry.per_module]


def _folders() -> list[str]:
    """The per-module documents' folders, in registry order."""
    return [entry.document for entry in operations.documents() if entry.per_module]


class ExportStore:
    """The exported documents of one request, as files on disk with an index entry each."""

    def __init__(self, data_request: DataRequest) -> None:
        self.reference = check_reference(data_request.reference)
        self.root = Path(settings.DSR_DATA_DIR) / "work" / self.reference
        self.devices_dir = self.root / "devices"

    # --- naming -------------------------------------------------------------------------------
    @staticmethod
    def relpath(device_label: str, name: str) -> str:
        """Where a document sits in the store and in the archive: ``devices/<id>/<name>.json``,
        or for a per-module document ``devices/<id>/<folder>/<module id>.json``."""
        folder, slash, module_id = name.partition("/")
        if not slash and name in _documents():
            leaf = name + DATA_SUFFIX
        elif slash and module_id and folder in _folders():
            leaf = f"{folder}/{safe_name(module_id)}{DATA_SUFFIX}"
        else:
            raise EvidenceError(f"unknown export document: {name!r}")
        return f"devices/{safe_name(device_label)}/{leaf}"

    def _path(self, relpath: str) -> Path:
        path = (self.root / relpath).resolve()
        if not path.is_relative_to(self.devices_dir.resolve()):
            raise EvidenceError(f"path leaves the store: {relpath!r}")
        return path

    # --- writing ------------------------------------------------------------------------------
    def write(
        self,
        device_label: str,
        name: str,
        data: object,
        *,
        source: dict[str, str] | list[dict[str, str]] | None = None,
    ) -> tuple[str, str, int, list[str]]:
        """Store one document (redacted) and its index entry; returns
        ``(relpath, sha256, size, redactions)``.

        ``name`` is a document of the registry, per module ``<folder>/<moduleId>`` (for a
        module pass ``{"module": identity, "twin": twin}``). ``source`` says where it came from:
        ``{"host", "path", "api_version"}`` or a list of those.
        """
        relpath = self.relpath(device_label, name)
        path = self._path(relpath)
        clean, redactions = redact(data)
        body = (json.dumps(clean, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        sha256 = hashlib.sha256(body).hexdigest()
        atomic_write_bytes(path, body)
        meta = {
            "path": relpath,
            "device_id": str(device_label),
            "document": name,
            "source": source,
            "sha256": sha256,
            "size": len(body),
            "redactions": redactions,
        }
        meta_body = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode()
        atomic_write_bytes(path.with_name(path.name + META_SUFFIX), meta_body)
        return relpath, sha256, len(body), redactions

    # --- reading ------------------------------------------------------------------------------
    def entries(self) -> Iterator[dict[str, Any]]:
        """Index entries (dicts, plus ``abspath``) in a stable order: devices by name, then the
        documents in registry order, then per-module documents by folder and name. One device
        is listed at a time.

        Names come from directory listings (never ``..``, never a ``/``) and symlinks are not
        followed, so every path stays inside the store.
        """
        root = str(self.devices_dir)
        if not os.path.isdir(root):
            return
        for device_dir in sorted(os.listdir(root)):
            base = os.path.join(root, device_dir)
            if os.path.islink(base) or not os.path.isdir(base):
                continue
            present = _regular_files(base)
            leaves = [name + DATA_SUFFIX for name in _documents()]
            for folder in _folders():
                in_folder = _folder_files(base, folder)
                present |= in_folder
                leaves += sorted(leaf for leaf in in_folder if leaf.endswith(DATA_SUFFIX))
            for leaf in leaves:
                # A data file without its entry is a write that died half way; it is redone.
                if leaf not in present or leaf + META_SUFFIX not in present:
                    continue
                data_path = os.path.join(base, leaf)
                with open(data_path + META_SUFFIX, "rb") as fh:
                    meta = json.load(fh)
                meta["path"] = f"devices/{device_dir}/{leaf}"
                meta["abspath"] = data_path
                yield meta

    def files(self) -> Iterator[tuple[str, str]]:
        """``(relpath in archive, absolute path)`` for every stored document, in stable order."""
        for entry in self.entries():
            yield entry["path"], entry["abspath"]

    def discard(self) -> None:
        """Remove the working files (after the archive is built and recorded)."""
        shutil.rmtree(self.root, ignore_errors=True)
