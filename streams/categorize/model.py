"""What the categoriser publishes: severity, harm categories with evidence, harm phrases.

JSON shape of one category (``HarmCategory.to_dict``)::

    {"tag": "S9", "name": "Indiscriminate Weapons", "severity": "critical", "severity_id": 5,
     "evidence": [{"task": 1, "step": 2, "matched": ["nerve gas", "sarin"]}]}

``task`` is the GuardReasoner task number (1: request harm, 3: response harm,
2: refusal), ``step`` the 1-based reasoning step within it, ``matched`` the
words of the reasoning that matched the tag's patterns, as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from streams.errors import ConfigError

__all__ = ["Categorization", "Evidence", "HarmCategory", "Severity"]


class Severity(IntEnum):
    """Four levels, ordered. ``ocsf_id`` is OCSF ``severity_id`` (2 Low … 5 Critical).

    ECS ``event.severity`` is a source-defined number: GuardStream uses the same
    ``ocsf_id`` there, so both SIEM formats carry one number.
    """

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def ocsf_id(self) -> int:
        return int(self) + 1

    def shifted(self, steps: int) -> Severity:
        """This level moved by ``steps``, clamped to LOW..CRITICAL."""
        return Severity(min(max(int(self) + steps, Severity.LOW), Severity.CRITICAL))

    @classmethod
    def parse(cls, value: object) -> Severity:
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise ConfigError(f"severity must be one of low, medium, high, critical (got {value!r})")


@dataclass(frozen=True, slots=True)
class Evidence:
    task: int
    step: int  # 1-based within the task
    matched: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "step": self.step, "matched": list(self.matched)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        return cls(task=data["task"], step=data["step"], matched=tuple(data.get("matched", ())))


@dataclass(frozen=True, slots=True)
class HarmCategory:
    """One taxonomy tag given to a harmful verdict, with where the reasoning says so."""

    tag: str
    name: str
    severity: Severity
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "name": self.name,
            "severity": self.severity.label,
            "severity_id": self.severity.ocsf_id,
            "evidence": [e.to_dict() for e in self.evidence],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HarmCategory:
        return cls(
            tag=data["tag"],
            name=data["name"],
            severity=Severity.parse(data["severity"]),
            evidence=tuple(Evidence.from_dict(e) for e in data.get("evidence", ())),
        )


@dataclass(frozen=True, slots=True)
class Categorization:
    """The categoriser's result for one verdict.

    ``severity`` is None only for a verdict that is not harmful (nothing to rate).
    """

    categories: tuple[HarmCategory, ...] = ()
    harms: tuple[str, ...] = ()
    severity: Severity | None = None

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(c.tag for c in self.categories)
