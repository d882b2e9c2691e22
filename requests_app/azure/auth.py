"""Authorization headers for one target: a SAS token from a shared access policy, or Entra ID.

Both kinds cache their token and make a new one shortly before it expires, so a long job never
sends an expired token and does not sign (or ask Entra ID) on every call. Keys never appear in a
repr or an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = [
    "ConnectionString",
    "ConnectionStringError",
    "SasAuth",
    "EntraAuth",
    "CREDENTIALS",
    "DPS_SCOPE",
    "HUB_SCOPE",
    "parse_connection_string",
    "sas_token",
]

DPS_SCOPE = "https://azure-devices-provisioning.net/.default"
HUB_SCOPE = "https://iothubs.azure.net/.default"

# Names a target may give as `credential`, and the azure-identity class each one means.
CREDENTIALS = {
    "default": "DefaultAzureCredential",
    "managed_identity": "ManagedIdentityCredential",
    "workload_identity": "WorkloadIdentityCredential",
    "environment": "EnvironmentCredential",
    "azure_cli": "AzureCliCredential",
}

SAS_TTL_SECONDS = 3600
# Renew a cached token when less than this is left, so it cannot expire during a retried call.
RENEW_MARGIN_SECONDS = 300


class ConnectionStringError(ValueError):
    """A connection string that cannot be used; the message never quotes the key."""


class ConnectionString:
    """``HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`` with the key decoded once."""

    __slots__ = ("hostname", "policy", "_key")

    def __init__(self, hostname: str, policy: str, key: bytes) -> None:
        self.hostname = hostname
        self.policy = policy
        self._key = key

    @property
    def key(self) -> bytes:
        return self._key

    def __repr__(self) -> str:
        return f"ConnectionString(hostname={self.hostname!r}, policy={self.policy!r}, key=<hidden>)"


def parse_connection_string(value: str) -> ConnectionString:
    parts: dict[str, str] = {}
    for raw in value.strip().split(";"):
        if not raw.strip():
            continue
        name, sep, part = raw.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConnectionStringError("malformed connection string (expected NAME=VALUE;…)")
        if name in parts:
            raise ConnectionStringError(f"connection string repeats {name}")
        if name not in ("HostName", "SharedAccessKeyName", "SharedAccessKey"):
            raise ConnectionStringError(
                f"connection string has an unexpected part {name!r} "
                "(a shared access policy connection string is needed)"
            )
        parts[name] = part.strip()
    for name in ("HostName", "SharedAccessKeyName", "SharedAccessKey"):
        if not parts.get(name):
            raise ConnectionStringError(f"connection string is missing {name}")
    try:
        key = base64.b64decode(parts["SharedAccessKey"], validate=True)
    except (binascii.Error, ValueError):
        raise ConnectionStringError("SharedAccessKey is not valid base64") from None
    if not key:
        raise ConnectionStringError("SharedAccessKey is empty")
    return ConnectionString(parts["HostName"].lower(), parts["SharedAccessKeyName"], key)


def sas_token(hostname: str, policy: str, key: bytes, expiry: float) -> str:
    """The service SAS token Azure expects, signed over ``urlencode(host) + "\\n" + expiry``."""
    resource = urllib.parse.quote(hostname, safe="")
    message = f"{resource}\n{int(expiry)}".encode()
    signature = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    return (
        f"SharedAccessSignature sr={resource}&sig={urllib.parse.quote(signature, safe='')}"
        f"&se={int(expiry)}&skn={urllib.parse.quote(policy, safe='')}"
    )


class _CachedToken:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._header: str | None = None
        self._expires = 0.0

    def get(self, make: Callable[[], tuple[str, float]]) -> str:
        with self._lock:
            if self._header is None or self._expires - self._clock() < RENEW_MARGIN_SECONDS:
                self._header, self._expires = make()
            return self._header

    def invalidate(self) -> None:
        with self._lock:
            self._header = None


class SasAuth:
    """Signs SAS tokens for the target's hostname with its policy key; renews before expiry."""

    kind = "sas"

    def __init__(
        self,
        hostname: str,
        connection: ConnectionString,
        *,
        ttl: int = SAS_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hostname = hostname
        self._connection = connection
        self._ttl = ttl
        self._clock = clock
        self._cache = _CachedToken(clock)

    def header(self) -> str:
        return self._cache.get(self._make)

    def _make(self) -> tuple[str, float]:
        expiry = int(self._clock() + self._ttl)
        token = sas_token(self.hostname, self._connection.policy, self._connection.key, expiry)
        return token, float(expiry)

    def invalidate(self) -> None:
        self._cache.invalidate()

    def __repr__(self) -> str:
        return f"SasAuth({self.hostname!r}, policy={self._connection.policy!r})"


class EntraAuth:
    """Bearer tokens from an azure-identity credential for one scope, cached until near expiry."""

    kind = "entra"

    def __init__(
        self, scope: str, credential: TokenCredential, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.scope = scope
        self._credential = credential
        self._cache = _CachedToken(clock)

    def header(self) -> str:
        return self._cache.get(self._make)

    def _make(self) -> tuple[str, float]:
        token = self._credential.get_token(self.scope)
        return f"Bearer {token.token}", float(token.expires_on)

    def invalidate(self) -> None:
        self._cache.invalidate()

    def __repr__(self) -> str:
        return f"EntraAuth({self.scope!r})"


def make_credential(name: str | None) -> TokenCredential:
    """Build the azure-identity credential a target names (imported only when needed)."""
    import azure.identity  # noqa: PLC0415 - only processes that call Azure need it loaded

    credential: TokenCredential = getattr(azure.identity, CREDENTIALS[name or "default"])()
    return credential
