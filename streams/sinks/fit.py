"""Keep every output record below the size the producer and the broker accept.

A verdict record is small unless a field is huge (a long chat text kept for the
audit trail, a runaway model output, thousands of reasoning steps).
:func:`fit_json` shrinks such a record until its JSON fits: it repeatedly
truncates the largest string or list in it, and names what it cut in the
record's ``truncated`` list (JSON pointers), so nothing is cut silently.
Records of a foreign schema (ECS, OCSF) say so where that schema allows: a
``mark`` function puts the list there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["Marker", "fit_json"]

# Puts the list of cut JSON pointers (filled while shrinking) into a record; also gets the
# record's original size in bytes.
Marker = Callable[[dict[str, Any], list[str], int], None]

_ELLIPSIS = "…"
_MIN_KEEP = 64


def _size(value: Any) -> int:
    return len(orjson.dumps(value))


def _largest(node: Any, path: str) -> tuple[int, str, Any, Any] | None:
    """(size, pointer, parent, key) of the largest string or list below ``node``."""
    best: tuple[int, str, Any, Any] | None = None
    children: list[tuple[Any, Any]]
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    else:
        return None
    for key, child in children:
        pointer = f"{path}/{key}"
        if isinstance(child, str | list) and child:
            size = _size(child)
            if best is None or size > best[0]:
                best = (size, pointer, node, key)
        if isinstance(child, dict | list):
            inner = _largest(child, pointer)
            if inner is not None and (best is None or inner[0] > best[0]):
                best = inner
    return best


def _cut(value: str | list[Any], target_bytes: int) -> str | list[Any]:
    if isinstance(value, str):
        # Characters are up to 6 bytes once JSON-escaped; cut by encoded size, then re-measure.
        keep = max(_MIN_KEEP, len(value) * target_bytes // max(1, _size(value)))
        return value[: max(0, min(keep, len(value) - 1))] + _ELLIPSIS
    keep = max(1, len(value) * target_bytes // max(1, _size(value)))
    return value[: min(keep, len(value) - 1)]


def _mark_top_level(record: dict[str, Any], cut: list[str], _size: int) -> None:
    record["truncated"] = cut


def fit_json(record: dict[str, Any], limit: int, *, mark: Marker | None = None) -> bytes:
    """``record`` as JSON of at most ``limit`` bytes (shrunk and marked when needed)."""
    data = orjson.dumps(record)
    if len(data) <= limit:
        return data
    shrunk = orjson.loads(data)  # a private copy to cut
    cut: list[str] = []
    (mark or _mark_top_level)(shrunk, cut, len(data))
    for _ in range(200):
        excess = len(data) - limit
        if excess <= 0:
            return data
        found = _largest(shrunk, "")
        if found is None or found[0] <= 2 * _MIN_KEEP:
            break
        size, pointer, parent, key = found
        parent[key] = _cut(parent[key], max(0, size - excess - 16))
        if pointer not in cut:
            cut.append(pointer)
        data = orjson.dumps(shrunk)
    if len(data) <= limit:
        return data
    raise ValueError(f"record cannot be shrunk below {limit} bytes")
