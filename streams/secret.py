"""Credentials in settings: masked wherever they could be printed, revealed only where used."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Secret"]

_MASK = "**********"


@dataclass(frozen=True, slots=True)
class Secret:
    """A password or key. ``repr`` and ``str`` never show it (so neither does a settings
    dataclass's repr, a log line or an exception that formats one); :meth:`reveal` returns it,
    for the one place that hands it to a client library or a child process's environment.
    Empty means not set."""

    _value: str = field(default="", repr=False)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret('{_MASK if self._value else ''}')"

    def __str__(self) -> str:
        return _MASK if self._value else ""
