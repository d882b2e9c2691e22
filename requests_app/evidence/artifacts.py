"""Storing a built artifact: write to a temp file, hash it, move it into place, record the row.

Artifacts live at ``DSR_DATA_DIR/artifacts/<reference>/<filename>``; the filename is made here
from the reference, never taken from input. A half-built file only ever exists in
``DSR_DATA_DIR/tmp/`` and is removed when building fails.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import transaction

from requests_app.evidence.store import check_reference, sha256_file
from requests_app.models import Artifact, AuditEvent, DataRequest


def artifact_dir(data_request: DataRequest) -> Path:
    return Path(settings.DSR_DATA_DIR) / "artifacts" / check_reference(data_request.reference)


def artifact_path(artifact: Artifact) -> Path:
    """The absolute path of a stored artifact, refusing anything outside the artifacts tree."""
    root = (Path(settings.DSR_DATA_DIR) / "artifacts").resolve()
    path = (Path(settings.DSR_DATA_DIR) / artifact.path).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"artifact path leaves the artifacts directory: {artifact.path!r}")
    return path


def store_artifact(
    data_request: DataRequest,
    kind: str,
    filename: str,
    content_type: str,
    write_fn: Callable[[IO[bytes]], object],
) -> Artifact:
    """Build an artifact with ``write_fn(fileobj)`` (a binary file open for writing, seekable),
    then hash it, move it into place and create or replace the request's row of that kind.

    Records an ``artifact_created`` audit event. Returns the ``Artifact``.
    """
    if "/" in filename or "\\" in filename or filename.startswith("."):
        raise ValueError(f"not a plain file name: {filename!r}")
    data_dir = Path(settings.DSR_DATA_DIR)
    tmp_dir = data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    target_dir = artifact_dir(data_request)
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=f"{data_request.reference}-", suffix=".part")
    try:
        with os.fdopen(fd, "w+b") as fh:
            write_fn(fh)
            fh.flush()
            os.fsync(fh.fileno())
        sha256, size = sha256_file(tmp)
        target = target_dir / filename
        relpath = target.relative_to(data_dir).as_posix()
        with transaction.atomic():
            # Serialise builds of one request so the file on disk and its row always agree.
            DataRequest.objects.select_for_update().filter(pk=data_request.pk).first()
            os.replace(tmp, target)
            artifact, _ = Artifact.objects.update_or_create(
                request=data_request,
                kind=kind,
                defaults={
                    "path": relpath,
                    "filename": filename,
                    "content_type": content_type,
                    "sha256": sha256,
                    "size": size,
                },
            )
            AuditEvent.record(
                "artifact_created",
                request=data_request,
                kind=kind,
                filename=filename,
                sha256=sha256,
                size=size,
            )
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return artifact
