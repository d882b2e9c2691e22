"""The IoT Hub queries a discovery sends, built only from checked parts.

A path comes from the targets file (checked at start-up against ``targets.OWNER_PATH``) and a
key from ``keys.check_key``; both are checked again here, so no caller can build a query from
unchecked text. One query per path: the answer then says which path matched, and its ``AS``
alias keeps the projected value under one name whatever the path.
"""

from requests_app.azure.targets import HUB, OWNER_PATH
from requests_app.discovery.keys import check_key, placeholder

VALUE = "ownerValue"


class UnsafeQuery(ValueError):
    """A path or key reached the builder without passing its check."""


def _literal(key: str) -> str:
    problem = check_key(key)
    if problem:
        raise UnsafeQuery(f"a subject key {problem}")
    return f"'{key}'"


def hub_query(path: str, keys: list[str]) -> str:
    """``SELECT deviceId, <path> AS ownerValue FROM devices WHERE <path> = '<key>'``, or
    ``IN [...]`` for several keys."""
    if not OWNER_PATH[HUB].match(path):
        raise UnsafeQuery(f"{path!r} is not an owner path")
    if not keys:
        raise UnsafeQuery("no subject key to search for")
    literals = [_literal(key) for key in keys]
    condition = f"= {literals[0]}" if len(literals) == 1 else f"IN [{', '.join(literals)}]"
    # An IoT Hub query, not SQL: the path matched OWNER_PATH and every key passed check_key.
    return f"SELECT deviceId, {path} AS {VALUE} FROM devices WHERE {path} {condition}"  # nosec B608 # noqa: S608


def masked_hub_query(path: str, keys: list[str]) -> str:
    """The same query as shown in the plan and the audit trail: keys as ``‹key n›``."""
    names = [f"'{placeholder(index)}'" for index in range(len(keys))]
    condition = f"= {names[0]}" if len(names) == 1 else f"IN [{', '.join(names)}]"
    return f"SELECT deviceId, {path} AS {VALUE} FROM devices WHERE {path} {condition}"  # nosec B608 # noqa: S608


def masked_dps_search(path: str, keys: list[str]) -> str:
    """What a DPS search does, in words: DPS queries take no WHERE clause, so the portal reads
    every individual enrollment and compares the path itself."""
    names = ", ".join(placeholder(index) for index in range(len(keys)))
    return f"individual enrollments (query '*') where {path} is one of {names}"


def value_at(document: object, path: str) -> object:
    """The value at a dotted ``path`` in a JSON object, or None when any step is missing."""
    for step in path.split("."):
        if not isinstance(document, dict):
            return None
        document = document.get(step)
    return document
