"""Typed readers for settings that come from the environment.

Each reader names the variable in its error, so a bad value stops the process with one line
that says what to fix. A secret may also be given as a file: ``NAME_FILE=/run/secrets/name``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import overload


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@overload
def envstr(name: str, default: None = None) -> str | None: ...
@overload
def envstr(name: str, default: str) -> str: ...
def envstr(name: str, default: str | None = None) -> str | None:
    """The variable's value, or the contents of the file named by ``NAME_FILE``."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file_path}: {exc.strerror}") from None
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def envbool(name: str, default: bool = False) -> bool:
    value = envstr(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}: expected true/false (1/0, yes/no), got {value!r}")


def envint(name: str, default: int, minimum: int | None = None) -> int:
    value = envstr(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {number}")
    return number


def envlist(name: str, default: Iterable[str] = ()) -> list[str]:
    value = envstr(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def envchoices(name: str, default: Iterable[str], allowed: Collection[str]) -> list[str]:
    """A comma-separated list whose every item is one of ``allowed`` (lower-cased)."""
    values = [item.lower() for item in envlist(name, default)]
    unknown = [item for item in values if item not in allowed]
    if unknown:
        raise ConfigError(
            f"{name}: unknown value {unknown[0]!r}; use a comma-separated list of "
            f"{', '.join(sorted(allowed))}"
        )
    return values


def envnetworks(name: str) -> list[str]:
    """A comma-separated list of IP addresses or networks (``10.0.0.0/8``), as strings."""
    import ipaddress

    values = envlist(name, [])
    for item in values:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or network") from None
    return values


PLACEHOLDER_KEYS = {"", "change-me", "changeme", "secret", "replace-me", "please-change-me"}


def check_secret_key(key: str | None, debug: bool) -> None:
    """Refuse to run in production with a missing, short or placeholder key."""
    if debug:
        return
    if key is None:
        raise ConfigError("SECRET_KEY: not set (required when DEBUG is off)")
    if key.strip().lower() in PLACEHOLDER_KEYS or key.startswith("django-insecure"):
        raise ConfigError("SECRET_KEY: is a placeholder; generate a random key of 50+ characters")
    if len(key) < 32 or len(set(key)) < 8:
        raise ConfigError("SECRET_KEY: too short or too simple; use 50+ random characters")
