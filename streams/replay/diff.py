"""What a replay changed: each replayed event against the latest original verdict of its event id.

Answers are compared as parsed (``harmful``, ``unharmful``, ``refusal``,
``compliance`` or ``null`` for no answer), all three tasks; at-least-once
duplicates collapse by event id (the latest verdict wins, on both sides). Only
transitions that happened are counted (``"harmful->unharmful": 3``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.kafka_security import KafkaTarget
from streams.replay.scan import scan
from streams.sinks import short_reason
from streams.verdict import Verdict

__all__ = ["REPLAY_RUN_HEADER", "Diff", "Summary", "compute_diff", "load_originals", "load_replayed"]

REPLAY_RUN_HEADER = "guardstream-replay-run"
TASKS = ("request", "completion", "response")


@dataclass(frozen=True, slots=True)
class Summary:
    """The parts of a verdict a diff compares."""

    event_id: str
    outcome: str
    answers: tuple[str | None, str | None, str | None]
    model: str
    moderated_at: float
    reason: str = ""

    @classmethod
    def of(cls, record: Mapping[str, Any], *, with_reason: bool = False) -> Summary:
        answers = record.get("answers") or {}
        reason = ""
        if with_reason:
            try:
                reason = short_reason(Verdict.from_dict(dict(record)))
            except (KeyError, TypeError, ValueError):
                reason = ""
        return cls(
            event_id=str(record["event_id"]),
            outcome=str(record.get("outcome")),
            answers=(answers.get("request"), answers.get("completion"), answers.get("response")),
            model=str(record.get("model") or ""),
            moderated_at=float(record.get("moderated_at") or 0.0),
            reason=reason,
        )


def _latest(into: dict[str, Summary], summary: Summary) -> None:
    current = into.get(summary.event_id)
    if current is None or summary.moderated_at >= current.moderated_at:
        into[summary.event_id] = summary


async def load_originals(bootstrap: KafkaTarget, archive_topic: str) -> dict[str, Summary]:
    """The latest archived verdict of every event id."""
    found: dict[str, Summary] = {}
    async for record in scan(bootstrap, archive_topic):
        try:
            _latest(found, Summary.of(orjson.loads(record.value)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # not a verdict record: nothing to compare with
    return found


async def load_replayed(bootstrap: KafkaTarget, replay_topic: str, run_id: str) -> dict[str, Summary]:
    """The latest verdict of every event the run ``run_id`` replayed (so far)."""
    wanted = run_id.encode()
    found: dict[str, Summary] = {}
    async for record in scan(bootstrap, replay_topic):
        if dict(record.headers or ()).get(REPLAY_RUN_HEADER) != wanted:
            continue
        try:
            _latest(found, Summary.of(orjson.loads(record.value), with_reason=True))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return found


def _key(old: str | None, new: str | None) -> str:
    return f"{old if old is not None else 'null'}->{new if new is not None else 'null'}"


@dataclass(slots=True)
class Diff:
    run_id: str
    events: int = 0
    compared: int = 0
    changed: int = 0
    flips: dict[str, Counter[str]] = field(default_factory=lambda: {t: Counter() for t in TASKS})
    outcomes: Counter[str] = field(default_factory=Counter)
    flipped: list[tuple[Summary, Summary]] = field(default_factory=list)  # (original, replayed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "events": self.events,
            "compared": self.compared,
            "changed": self.changed,
            "flips": {task: dict(sorted(c.items())) for task, c in self.flips.items() if c},
            "outcomes": dict(sorted(self.outcomes.items())),
        }

    def flipped_records(self) -> Iterable[dict[str, Any]]:
        for old, new in self.flipped:
            yield {
                "event_id": new.event_id,
                "old": {
                    "model": old.model,
                    "outcome": old.outcome,
                    "answers": dict(zip(TASKS, old.answers, strict=True)),
                },
                "new": {
                    "model": new.model,
                    "outcome": new.outcome,
                    "answers": dict(zip(TASKS, new.answers, strict=True)),
                },
                "reason": new.reason,
            }

    def table(self, show: int = 10) -> str:
        lines = [
            f"replay {self.run_id}: {self.events} event(s) replayed, {self.compared} with an original "
            f"verdict, {self.changed} changed",
        ]
        for task in TASKS:
            for key, count in sorted(self.flips[task].items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"  {task:<10} {key:<26} {count:>7}")
        for key, count in sorted(self.outcomes.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {'outcome':<10} {key:<26} {count:>7}")
        if self.flipped:
            lines.append(f"first {min(show, len(self.flipped))} changed event(s):")
            for old, new in self.flipped[:show]:
                changes = ", ".join(
                    f"{task} {_key(a, b)}"
                    for task, a, b in zip(TASKS, old.answers, new.answers, strict=True)
                    if a != b
                )
                lines.append(f"  {new.event_id}: {changes}")
                if new.reason:
                    lines.append(f"    why: {new.reason}")
        return "\n".join(lines)


def compute_diff(run_id: str, replayed: Mapping[str, Summary], originals: Mapping[str, Summary]) -> Diff:
    diff = Diff(run_id, events=len(replayed))
    for event_id in sorted(replayed):
        new = replayed[event_id]
        old = originals.get(event_id)
        if old is None:
            continue
        diff.compared += 1
        if old.outcome != new.outcome:
            diff.outcomes[_key(old.outcome, new.outcome)] += 1
        if old.answers == new.answers:
            continue
        diff.changed += 1
        diff.flipped.append((old, new))
        for task, a, b in zip(TASKS, old.answers, new.answers, strict=True):
            if a != b:
                diff.flips[task][_key(a, b)] += 1
    return diff
