"""Taking credentials out of Azure responses before they are stored or handed over.

Hub device and module GETs return symmetric keys in clear, DPS enrollments carry them too, and
TPM enrollments carry the endorsement and storage root keys. Keys are credentials, not personal
data: the export keeps the shape of each document and puts ``"<redacted>"`` where a key was, and
the manifest lists every place that was changed.
"""

from __future__ import annotations

REDACTED = "<redacted>"

# Compared case-insensitively: Azure is consistent, hand-made or older documents are not.
KEY_NAMES = frozenset({"primarykey", "secondarykey", "endorsementkey", "storagerootkey"})
# Everything below a key of this name is key material, whatever it is called.
KEY_CONTAINERS = frozenset({"symmetrickey"})


def redact(obj: object) -> tuple[object, list[str]]:
    """Return ``(clean copy of obj, [JSON paths that were redacted])``; ``obj`` is not changed.

    Paths read like ``authentication.symmetricKey.primaryKey`` or ``modules[0].authentication…``.
    A key that is ``null`` holds no secret and is left as it is (and not listed).
    """
    paths: list[str] = []
    return _walk(obj, "", False, paths), paths


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _walk(value: object, path: str, secret: bool, paths: list[str]) -> object:
    if isinstance(value, dict):
        clean: dict[object, object] = {}
        for key, item in value.items():
            name = str(key).lower()
            child = _join(path, key)
            if name in KEY_CONTAINERS:
                clean[key] = _walk(item, child, True, paths)
            elif name in KEY_NAMES or secret:
                clean[key] = _hide(item, child, paths)
            else:
                clean[key] = _walk(item, child, False, paths)
        return clean
    if isinstance(value, list | tuple):
        return [_walk(item, f"{path}[{i}]", secret, paths) for i, item in enumerate(value)]
    if secret:
        return _hide(value, path, paths)
    return value


def _hide(value: object, path: str, paths: list[str]) -> object:
    """Redact a key's value; inside containers keep the shape so readers see what was there."""
    if value is None:
        return None
    if isinstance(value, dict | list | tuple):
        return _walk(value, path, True, paths)
    paths.append(path)
    return REDACTED
