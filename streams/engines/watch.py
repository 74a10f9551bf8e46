"""Stop generations that loop: watch the streamed text, abort when it turns into a runaway."""

from __future__ import annotations

from streams.parse import is_runaway

__all__ = ["RunawayWatch"]


class RunawayWatch:
    """Accumulates streamed text; :meth:`feed` says when the generation should be stopped.

    Checks every ``every_chars`` characters once ``min_chars`` were produced
    (real outputs: median ~1,300, p99 ~2,100 characters), so the cost stays
    small and normal outputs are never cut.
    """

    __slots__ = ("_checked", "_every", "_min", "_parts", "_size")

    def __init__(self, *, every_chars: int = 400, min_chars: int = 1_200) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._checked = 0
        self._every = every_chars
        self._min = min_chars

    def feed(self, delta: str) -> bool:
        self._parts.append(delta)
        self._size += len(delta)
        if self._size < self._min or self._size - self._checked < self._every:
            return False
        self._checked = self._size
        return is_runaway(self.text)

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""
