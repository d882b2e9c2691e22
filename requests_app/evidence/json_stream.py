"""Pretty JSON written piece by piece: lists given as iterators are streamed item by item, so a
document with a million entries never has to be held in memory (the export archive's manifest
and history)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TypeGuard


def json_chunks(value: object, level: int = 0) -> Iterator[str]:
    """Pretty JSON as a sequence of strings. Lists may be iterators: they are streamed item by
    item, never gathered; everything else is encoded whole."""
    pad = "  " * level
    if isinstance(value, dict) and _streams(value):
        first = True
        for key, item in value.items():
            yield ("{\n" if first else ",\n") + pad + "  " + json.dumps(str(key)) + ": "
            yield from json_chunks(item, level + 1)
            first = False
        yield "\n" + pad + "}"
    elif _is_iterator(value):
        first = True
        for item in value:
            yield ("[\n" if first else ",\n") + pad + "  " + _dumps(item, level + 1)
            first = False
        yield "[]" if first else "\n" + pad + "]"
    else:
        yield _dumps(value, level)


def _dumps(value: object, level: int) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text.replace("\n", "\n" + "  " * level) if level else text


def _streams(value: object) -> bool:
    if isinstance(value, dict):
        return any(_streams(item) for item in value.values())
    return _is_iterator(value)


def _is_iterator(value: object) -> TypeGuard[Iterator[object]]:
    return hasattr(value, "__next__") and hasattr(value, "__iter__")
