"""The Ed25519 keys of the checkpoints: the scheduler's signing key (a file only it reads) and
the public keys everyone verifies with (DSR_AUDIT_PUBLIC_KEY).

Without DSR_AUDIT_SIGNING_KEY_FILE, DEBUG (``make run``) signs with a development key it makes
under DSR_DATA_DIR and says so; production refuses, as it does for a missing SECRET_KEY. Each
error names the variable to fix, in one line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from django.conf import settings

SIGNING_VAR = "DSR_AUDIT_SIGNING_KEY_FILE"
PUBLIC_VAR = "DSR_AUDIT_PUBLIC_KEY"


class CheckpointConfigError(Exception):
    """A checkpoint setting is missing or unusable; the message starts with the variable."""


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """What a person compares by eye: the first 16 hex digits of SHA-256 of the raw key."""
    return hashlib.sha256(raw_public(public_key)).hexdigest()[:16]


def public_b64(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public(public_key)).decode()


def generate_key_file(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """A new private key at ``path`` (PEM, mode 0600); never overwrites. Returns the key."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    return key


def read_key_file(path: str | os.PathLike[str], variable: str = SIGNING_VAR) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointConfigError(f"{variable}: {path} is not an Ed25519 private key (PEM)")
    return key


def dev_key_path() -> Path:
    return Path(settings.DSR_DATA_DIR) / "audit" / "dev-signing-key.pem"


def signing_key() -> tuple[Ed25519PrivateKey, str | None]:
    """The scheduler's key and a note for its log (or None), checked against the public keys.
    Raises CheckpointConfigError naming the variable."""
    path: str | Path | None = settings.DSR_AUDIT_SIGNING_KEY_FILE
    note: str | None = None
    if not path and not settings.DEBUG:
        raise CheckpointConfigError(
            f"{SIGNING_VAR}: not set (required when DEBUG is off); "
            "create a key with `manage.py audit_keygen --out PATH`"
        )
    if not path:
        path = dev_key_path()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            generate_key_file(path)
        note = f"{SIGNING_VAR} is not set: DEBUG, so checkpoints are signed with the dev key {path}"
        note += " (development only)"
    key = read_key_file(path)
    _check_public_keys(key.public_key())
    return key, note


def _check_public_keys(public_key: Ed25519PublicKey) -> None:
    """The web verifies with DSR_AUDIT_PUBLIC_KEY: refuse to sign what it would call forged."""
    known = public_keys()
    if fingerprint(public_key) in known:
        return
    if settings.DSR_AUDIT_PUBLIC_KEY or not settings.DEBUG:
        raise CheckpointConfigError(
            f"{PUBLIC_VAR}: does not hold the public key of {SIGNING_VAR} "
            f"(fingerprint {fingerprint(public_key)}); add {public_b64(public_key)}"
        )
    # DEBUG without a public key: the web reads it from beside the development key.
    dev_public_path().write_text(public_b64(public_key) + "\n")


def dev_public_path() -> Path:
    return dev_key_path().with_suffix(".pub")


def parse_public_keys(text: str | None, variable: str = PUBLIC_VAR) -> dict[str, Ed25519PublicKey]:
    """{fingerprint: key} from base64 raw Ed25519 keys separated by commas or spaces (more
    than one while a key is being replaced: old checkpoints keep verifying)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for item in re.split(r"[\s,]+", (text or "").strip()):
        if not item:
            continue
        try:
            raw = base64.b64decode(item, validate=True)
            key = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            raise CheckpointConfigError(
                f"{variable}: {item[:12]}… is not a base64 Ed25519 public key (32 bytes)"
            ) from None
        keys[fingerprint(key)] = key
    return keys


def public_keys() -> dict[str, Ed25519PublicKey]:
    """The keys checkpoints are verified with. DEBUG without DSR_AUDIT_PUBLIC_KEY: the
    development key's, when the scheduler has made one."""
    if settings.DSR_AUDIT_PUBLIC_KEY or not settings.DEBUG:
        return parse_public_keys(settings.DSR_AUDIT_PUBLIC_KEY)
    try:
        return parse_public_keys(dev_public_path().read_text(), variable=str(dev_public_path()))
    except OSError:
        return {}


def verify_signature(public_key: Ed25519PublicKey, signature_b64: str, data: bytes) -> bool:
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), data)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
