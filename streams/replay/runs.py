"""A replay run: what it re-moderates (fixed when it starts) and where that is recorded.

A run is described once, when it starts, by a :class:`RunSpec` published to
``moderation.replay.runs`` (key: the run id): the source topic, the time range,
and per partition the offset range ``[start, end)``. The end is the partition's
high watermark at that moment, so a replay of a live topic finishes. A run
started again with the same ``--run-id`` reads its spec back and continues from
its consumer group's committed offsets to the same ends.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.errors import ConfigError

__all__ = ["RunSpec", "new_run_id", "parse_time"]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def parse_time(text: str | None) -> float | None:
    """``--from`` / ``--until``: epoch seconds, or ISO-8601 with a time zone (``Z`` allowed)."""
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{text!r} is neither epoch seconds nor an ISO-8601 time") from exc
    if parsed.tzinfo is None:
        raise ConfigError(f"{text!r} has no time zone (add Z or +HH:MM)")
    return parsed.timestamp()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    run_id: str
    topic: str
    ranges: dict[int, tuple[int, int]]  # partition -> [start, end) offsets
    time_from: float | None = None  # record timestamps, epoch seconds (inclusive)
    time_until: float | None = None  # inclusive
    engine: str = ""
    priority: int = 0
    publish_live: bool = False
    created_at: float = field(default_factory=time.time)

    @property
    def total(self) -> int:
        """Records in the offset ranges (those outside the time range are read, then skipped)."""
        return sum(end - start for start, end in self.ranges.values())

    def selects(self, timestamp: float | None) -> bool:
        if timestamp is None:
            return self.time_from is None and self.time_until is None
        if self.time_from is not None and timestamp < self.time_from:
            return False
        return self.time_until is None or timestamp <= self.time_until

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "topic": self.topic,
            "ranges": {str(p): list(r) for p, r in sorted(self.ranges.items())},
            "from": self.time_from,
            "until": self.time_until,
            "engine": self.engine,
            "priority": self.priority,
            "publish_live": self.publish_live,
            "created_at": self.created_at,
        }
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes) -> RunSpec:
        data = orjson.loads(raw)
        return cls(
            run_id=data["run_id"],
            topic=data["topic"],
            ranges={int(p): (int(r[0]), int(r[1])) for p, r in data["ranges"].items()},
            time_from=data.get("from"),
            time_until=data.get("until"),
            engine=data.get("engine", ""),
            priority=int(data.get("priority", 0)),
            publish_live=bool(data.get("publish_live", False)),
            created_at=float(data.get("created_at", 0.0)),
        )
