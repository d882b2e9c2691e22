"""The targets file: which DPS instances and IoT hubs the portal may call, and how to sign in.

```toml
[[dps]]
hostname = "demo-dps.azure-devices-provisioning.net"
auth = "sas"
connection_string_env = "DPS_CONN"          # or connection_string_file = "secrets/dps"
owner_paths = ["initialTwin.tags.customerId"]  # individual enrollments' owner tags

[[hub]]
hostname = "demo-hub-1.azure-devices.net"
auth = "entra"                              # default credential: DefaultAzureCredential
credential = "managed_identity"             # or workload_identity, environment, azure_cli
tier = "S1"                                 # S1 | S2 | S3, default S1
units = 2                                   # default 1
owner_paths = ["tags.customerId", "properties.reported.ownerRef"]  # where owners are recorded
# endpoint = "http://127.0.0.1:8701"        # test setups: send here, with Host: <hostname>
# rate_scale = 60                           # simulator only: multiplies the pacing rates
```

Everything is checked at start-up and the first problem is reported naming the entry (counted
from 1, as a person reads the file) and the field. Keys never appear in a message or a repr.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .auth import CREDENTIALS, ConnectionString, ConnectionStringError, parse_connection_string

__all__ = ["Target", "Targets", "TargetsError", "load_targets", "configured_targets"]

DPS = "dps"
HUB = "hub"
TIERS = ("S1", "S2", "S3")
SUFFIX = {DPS: ".azure-devices-provisioning.net", HUB: ".azure-devices.net"}
COMMON_FIELDS = {
    "hostname",
    "endpoint",
    "auth",
    "connection_string_env",
    "connection_string_file",
    "credential",
    "rate_scale",
    "owner_paths",
}
FIELDS = {DPS: COMMON_FIELDS, HUB: COMMON_FIELDS | {"tier", "units"}}
# Where a device may record its owner, for finding a data subject's devices: a twin's tags or
# properties on a hub, an individual enrollment's initial twin tags on DPS. Plain names only, so
# a path is always a valid query-language property reference.
_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
OWNER_PATH = {
    HUB: re.compile(rf"^(tags|properties\.(reported|desired))(\.{_NAME}){{1,5}}$"),
    DPS: re.compile(rf"^initialTwin\.tags(\.{_NAME}){{1,5}}$"),
}
OWNER_PATH_EXAMPLE = {HUB: "tags.customerId", DPS: "initialTwin.tags.customerId"}
MAX_OWNER_PATHS = 5
# Builds the error for one field of the entry being read: (field, problem) -> TargetsError.
Fail = Callable[[str, str], "TargetsError"]
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9-]{1,63})+$")


class TargetsError(ValueError):
    """The targets file cannot be used; the message names the entry and the field."""


@dataclasses.dataclass(frozen=True)
class Target:
    kind: str  # "dps" or "hub"
    hostname: str
    auth: str  # "sas" or "entra"
    endpoint: str | None = None
    credential: str | None = None  # entra only; None means DefaultAzureCredential
    tier: str = "S1"
    units: int = 1
    rate_scale: float = 1.0
    owner_paths: tuple[str, ...] = ()
    # Secret: kept out of repr and comparisons.
    connection: ConnectionString | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def base_url(self) -> str:
        return self.endpoint or f"https://{self.hostname}"


@dataclasses.dataclass(frozen=True)
class Targets:
    dps: dict[str, Target] = dataclasses.field(default_factory=dict)  # by hostname
    hubs: dict[str, Target] = dataclasses.field(default_factory=dict)  # by hostname
    path: str | None = None

    def get(self, hostname: str | None) -> Target | None:
        hostname = (hostname or "").strip().lower().rstrip(".")
        return self.dps.get(hostname) or self.hubs.get(hostname)

    def __contains__(self, hostname: str | None) -> bool:
        return self.get(hostname) is not None

    def __iter__(self) -> Iterator[Target]:
        yield from self.dps.values()
        yield from self.hubs.values()


def load_targets(
    path: str | os.PathLike[str],
    *,
    secrets: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Targets:
    """Read and validate a targets file.

    With ``secrets=False`` the connection strings are not read (for processes such as the web
    server that need to know which hosts exist but never call them).
    """
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise TargetsError(f"{path}: cannot read the targets file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {DPS, HUB}
    if unknown:
        raise TargetsError(
            f"{path}: unknown section {sorted(unknown)[0]!r} (expected [[dps]] and [[hub]])"
        )
    found: dict[str, dict[str, Target]] = {DPS: {}, HUB: {}}
    for kind in (DPS, HUB):
        entries = data.get(kind, [])
        if not isinstance(entries, list):
            raise TargetsError(f"{path}: {kind} must be an array of tables ([[{kind}]])")
        for number, entry in enumerate(entries, start=1):
            target = _target(kind, number, entry, path.parent, secrets, environ)
            if target.hostname in found[DPS] or target.hostname in found[HUB]:
                raise TargetsError(
                    f"{kind}[{number}] ({target.hostname}): hostname: "
                    "listed more than once in the targets file"
                )
            found[kind][target.hostname] = target
    return Targets(dps=found[DPS], hubs=found[HUB], path=str(path))


def _target(
    kind: str,
    number: int,
    entry: object,
    base_dir: Path,
    secrets: bool,
    environ: Mapping[str, str],
) -> Target:
    where = f"{kind}[{number}]"
    if not isinstance(entry, dict):
        raise TargetsError(f"{where}: must be a table")
    raw_host = entry.get("hostname")
    if isinstance(raw_host, str):
        where = f"{where} ({raw_host.strip()})"

    def fail(field: str, problem: str) -> TargetsError:
        return TargetsError(f"{where}: {field}: {problem}")

    unknown = sorted(set(entry) - FIELDS[kind])
    if unknown:
        raise fail(unknown[0], "unknown field")
    if not isinstance(raw_host, str) or not raw_host.strip():
        raise fail("hostname", "required")
    hostname = raw_host.strip().lower().rstrip(".")
    if not _HOSTNAME.match(hostname):
        raise fail("hostname", "not a valid host name")
    endpoint = _endpoint(entry.get("endpoint"), fail)
    if endpoint is None and not hostname.endswith(SUFFIX[kind]):
        raise fail(
            "hostname", f"must end with {SUFFIX[kind]} (or give an endpoint for a test setup)"
        )

    auth, credential, connection = _auth(entry, hostname, base_dir, secrets, environ, fail)
    tier, units, rate_scale = _capacity(entry, fail)
    return Target(
        owner_paths=_owner_paths(kind, entry.get("owner_paths", []), fail),
        kind=kind,
        hostname=hostname,
        auth=auth,
        endpoint=endpoint,
        credential=credential,
        tier=tier,
        units=units,
        rate_scale=rate_scale,
        connection=connection,
    )


def _auth(
    entry: dict[str, Any],
    hostname: str,
    base_dir: Path,
    secrets: bool,
    environ: Mapping[str, str],
    fail: Fail,
) -> tuple[str, str | None, ConnectionString | None]:
    """(auth, credential, connection): a SAS policy's connection string, or Entra ID."""
    auth = entry.get("auth")
    if auth not in ("sas", "entra"):
        raise fail("auth", f'must be "sas" or "entra", got {auth!r}')
    credential = entry.get("credential")
    if auth == "sas":
        if credential is not None:
            raise fail("credential", 'only for auth = "entra"')
        return auth, None, _connection(entry, hostname, base_dir, secrets, environ, fail)
    for field in ("connection_string_env", "connection_string_file"):
        if field in entry:
            raise fail(field, 'only for auth = "sas"')
    if credential is not None and credential not in CREDENTIALS:
        raise fail("credential", f"must be one of {', '.join(CREDENTIALS)}, got {credential!r}")
    return auth, credential, None


def _capacity(entry: dict[str, Any], fail: Fail) -> tuple[str, int, float]:
    """(tier, units, rate_scale): what sizes the target's throttles."""
    tier = entry.get("tier", "S1")
    if not isinstance(tier, str) or tier.upper() not in TIERS:
        raise fail("tier", f"must be one of {', '.join(TIERS)}, got {tier!r}")
    units = entry.get("units", 1)
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise fail("units", f"must be a whole number of at least 1, got {units!r}")
    rate_scale = entry.get("rate_scale", 1.0)
    if isinstance(rate_scale, bool) or not isinstance(rate_scale, int | float) or rate_scale <= 0:
        raise fail("rate_scale", f"must be a number above 0, got {rate_scale!r}")
    return tier.upper(), units, float(rate_scale)


def _owner_paths(kind: str, value: object, fail: Fail) -> tuple[str, ...]:
    field = "owner_paths"
    if not isinstance(value, list) or not all(isinstance(path, str) for path in value):
        raise fail(field, f'must be a list of paths such as ["{OWNER_PATH_EXAMPLE[kind]}"]')
    if len(value) > MAX_OWNER_PATHS:
        raise fail(field, f"at most {MAX_OWNER_PATHS} paths")
    for path in value:
        if not OWNER_PATH[kind].match(path):
            where = (
                "tags. or properties.reported. / properties.desired."
                if kind == HUB
                else "initialTwin.tags."
            )
            raise fail(
                field,
                f"{path!r} is not a path the portal can search: it must start with {where} "
                "and name properties made of letters, digits and _",
            )
    if len(set(value)) != len(value):
        raise fail(field, "a path is listed twice")
    return tuple(value)


def _endpoint(value: object, fail: Fail) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise fail("endpoint", "must be a URL such as http://127.0.0.1:8701")
    parsed = urllib.parse.urlsplit(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise fail("endpoint", f"must be an http:// or https:// URL, got {value!r}")
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise fail("endpoint", "must not carry a query, fragment or credentials")
    return value.strip().rstrip("/")


def _connection(
    entry: dict[str, Any],
    hostname: str,
    base_dir: Path,
    secrets: bool,
    environ: Mapping[str, str],
    fail: Fail,
) -> ConnectionString | None:
    env_name = entry.get("connection_string_env")
    file_name = entry.get("connection_string_file")
    if (env_name is None) == (file_name is None):
        raise fail(
            "connection_string_env",
            'auth = "sas" needs exactly one of connection_string_env or connection_string_file',
        )
    if env_name is not None:
        field = "connection_string_env"
        if not isinstance(env_name, str) or not env_name:
            raise fail(field, "must be the name of an environment variable")
        if not secrets:
            return None
        value = environ.get(env_name)
        if not value or not value.strip():
            raise fail(field, f"environment variable {env_name} is not set")
    else:
        field = "connection_string_file"
        if not isinstance(file_name, str) or not file_name:
            raise fail(field, "must be a file path")
        if not secrets:
            return None
        secret_path = base_dir / file_name
        try:
            value = secret_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise fail(field, f"cannot read {secret_path} ({reason})") from None
    try:
        connection = parse_connection_string(value)
    except ConnectionStringError as exc:
        raise fail(field, str(exc)) from None
    if connection.hostname != hostname:
        raise fail(field, f"HostName {connection.hostname} does not match the target hostname")
    return connection


@functools.cache
def _load_cached(path: str, secrets: bool) -> Targets:
    return load_targets(path, secrets=secrets)


def configured_targets(*, secrets: bool = True) -> Targets:
    """The targets named by ``settings.DSR_AZURE_TARGETS``, loaded once per process.

    An unset setting means no targets: every client look-up then raises UnconfiguredTarget.
    ``configured_targets.cache_clear()`` forgets the loaded file.
    """
    from django.conf import settings  # noqa: PLC0415 - keep Django out of import time

    path = getattr(settings, "DSR_AZURE_TARGETS", None)
    if not path:
        return Targets()
    return _load_cached(str(path), secrets)


# A function attribute, as functools.cache gives one (tests and benchmarks forget the file);
# mypy does not model attributes added to a function.
configured_targets.cache_clear = _load_cached.cache_clear  # type: ignore[attr-defined]
