"""Query strings → queue filters, shared by the HTML queue and ``GET /api/verdicts``.

Parameters: ``outcome`` (comma list of harmful, unharmful, unparsed,
engine_error; ``undecided`` = unparsed + engine_error), ``category`` (a tag),
``model``, ``since`` / ``until`` (ISO-8601, UTC when no zone is given, or epoch
seconds), ``reviewed`` (true/false), ``flips`` (true: replayed verdicts that
changed), ``run`` (one replay run), ``limit`` and ``cursor``. Anything else
that is malformed is a :class:`FilterError` (HTTP 400), never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from streams.store.queue import Cursor, QueueFilter

__all__ = ["OUTCOMES", "FilterError", "filter_params", "parse_cursor", "parse_filter", "parse_limit"]

OUTCOMES = ("harmful", "unharmful", "unparsed", "engine_error")
_ALIASES = {"undecided": ("unparsed", "engine_error")}
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_MAX_TEXT = 200


class FilterError(ValueError):
    """A query parameter is malformed (answered as HTTP 400)."""


def _bool(name: str, raw: str) -> bool | None:
    value = raw.strip().lower()
    if value in ("", "any"):
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise FilterError(f"{name}: true or false")


def _time(name: str, raw: str) -> datetime | None:
    text = raw.strip()
    if not text:
        return None
    try:
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return datetime.fromtimestamp(float(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError) as exc:
        raise FilterError(f"{name}: ISO-8601 time or epoch seconds") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(name: str, raw: str) -> str | None:
    text = raw.strip()
    if len(text) > _MAX_TEXT:
        raise FilterError(f"{name}: at most {_MAX_TEXT} characters")
    return text or None


def parse_filter(query: Mapping[str, str]) -> QueueFilter:
    outcomes: list[str] = []
    for part in query.get("outcome", "").split(","):
        name = part.strip().lower()
        if not name or name == "any":
            continue
        if name in _ALIASES:
            outcomes.extend(_ALIASES[name])
        elif name in OUTCOMES:
            outcomes.append(name)
        else:
            raise FilterError(f"outcome: one of {', '.join((*OUTCOMES, *_ALIASES))}")
    category = _text("category", query.get("category", ""))
    if category is not None and not _TAG.match(category):
        raise FilterError("category: a tag such as S1 (letters, digits, _ . : -)")
    return QueueFilter(
        outcomes=tuple(dict.fromkeys(outcomes)),
        category=category,
        model=_text("model", query.get("model", "")),
        since=_time("since", query.get("since", "")),
        until=_time("until", query.get("until", "")),
        reviewed=_bool("reviewed", query.get("reviewed", "")),
        flips=bool(_bool("flips", query.get("flips", ""))),
        run_id=_text("run", query.get("run", "")),
    )


def parse_limit(query: Mapping[str, str], *, default: int, maximum: int = 500) -> int:
    raw = query.get("limit", "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise FilterError(f"limit: 1 to {maximum}")
    return int(raw)


def parse_cursor(query: Mapping[str, str]) -> Cursor | None:
    raw = query.get("cursor", "").strip()
    if not raw:
        return None
    try:
        return Cursor.decode(raw)
    except ValueError as exc:
        raise FilterError("cursor: use the `next` value of the previous page") from exc


def filter_params(f: QueueFilter) -> dict[str, str]:
    """The query parameters that reproduce ``f`` (for links to the next page)."""
    params = {
        "outcome": ",".join(f.outcomes),
        "category": f.category or "",
        "model": f.model or "",
        "since": f.since.isoformat() if f.since else "",
        "until": f.until.isoformat() if f.until else "",
        "reviewed": "" if f.reviewed is None else str(f.reviewed).lower(),
        "flips": "true" if f.flips else "",
        "run": f.run_id or "",
    }
    return {k: v for k, v in params.items() if v}
