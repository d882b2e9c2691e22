"""A checkpoint as published: the signed statement, its file form, and reading one back.

The statement is ``{version, seq, head_hash, event_count, created_at, key_fingerprint}``; the
signature is Ed25519 over its canonical JSON (sorted keys, no spaces), so a copy that was
re-indented still verifies. A file holds ``{"checkpoint": {...}, "signature": "base64"}`` and is
named after the event it covers. docs/verify_audit_offline.py reads the same format without
Django: change both together, and only by adding a new ``version``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from requests_app.evidence.checkpoints.keys import verify_signature

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VERSION = 1
FIELDS = ("version", "seq", "head_hash", "event_count", "created_at", "key_fingerprint")
FILE_NAME = re.compile(r"^checkpoint-(\d{12})\.json$")


def canonical(statement: Mapping[str, object]) -> str:
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def file_name(seq: int) -> str:
    return f"checkpoint-{seq:012d}.json"


def file_text(statement: Mapping[str, object], signature: str) -> str:
    """What the directory, the email attachment and the webhook receive."""
    return json.dumps({"checkpoint": statement, "signature": signature}, indent=2) + "\n"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint whose signature verified: the chain is held against it."""

    seq: int
    head_hash: str
    event_count: int
    created_at: str
    key_fingerprint: str
    signature: str
    source: str  # the file name, or "database"

    @property
    def name(self) -> str:
        return f"signed checkpoint #{self.seq}"

    def as_dict(self) -> dict[str, Any]:
        """The published form, for certificates and evidence reports."""
        statement = {field: getattr(self, field) for field in FIELDS if field != "version"}
        return {
            "checkpoint": {"version": VERSION, **statement},
            "signature": self.signature,
            "source": self.source,
        }


@dataclass
class CheckpointSet:
    """Checkpoints read for a verification: the good ones by seq, and the first problem."""

    valid: dict[int, Checkpoint]  # by seq
    problem: str | None = None
    total: int = 0


def parse(
    document: object,
    source: str,
    keys: Mapping[str, Ed25519PublicKey],
    label: str | None = None,
) -> tuple[Checkpoint | None, str | None]:
    """(Checkpoint, None) or (None, problem) for a published document (a dict)."""
    label = label or f"checkpoint {source}"
    if not isinstance(document, dict) or not isinstance(document.get("checkpoint"), dict):
        return None, f'{label} is not a checkpoint (no "checkpoint" object)'
    statement = document["checkpoint"]
    if sorted(statement) != sorted(FIELDS) or statement.get("version") != VERSION:
        return None, f"{label} is forged or of an unknown version (fields {sorted(statement)})"
    key = keys.get(statement["key_fingerprint"])
    if key is None:
        return None, (
            f"{label} is signed by an unknown key (fingerprint {statement['key_fingerprint']}; "
            "DSR_AUDIT_PUBLIC_KEY holds " + (", ".join(sorted(keys)) or "none") + ")"
        )
    signature = document.get("signature")
    if not isinstance(signature, str) or not verify_signature(
        key, signature, canonical(statement).encode()
    ):
        return None, f"{label} is forged: its signature does not verify"
    statement = {field: statement[field] for field in FIELDS if field != "version"}
    return Checkpoint(**statement, signature=signature, source=source), None


def parse_file(
    path: Path, keys: Mapping[str, Ed25519PublicKey]
) -> tuple[Checkpoint | None, str | None]:
    """Like ``parse``, for a file of the checkpoint directory (its name must match its seq)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"checkpoint {path.name} cannot be read: {exc}"
    checkpoint, problem = parse(document, path.name, keys)
    if checkpoint is not None and path.name != file_name(checkpoint.seq):
        return None, f"checkpoint {path.name} is forged: it holds checkpoint #{checkpoint.seq}"
    return checkpoint, problem
