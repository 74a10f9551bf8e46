"""Runaway detection: outputs that loop until the token cap.

About 0.1% of real GuardReasoner outputs degenerate into repetition (``. . . .``
for thousands of characters, or ``# Task 63``, ``# Task 64``, ... each with the
same sentence). Two checks on the output's tail, both cheap (slice compares):

1. *periodic tail*: the last ``min_span`` characters repeat with some period
   ``p`` ≤ ``max_period`` (at least three times);
2. *repeated lines*: among the last ``window`` non-empty lines, with digits
   masked, at most a third are distinct.

Normal outputs (median ~1,300 characters, p99 ~2,100) pass both.
"""

from __future__ import annotations

import re

__all__ = ["is_runaway"]

_DIGITS = re.compile(r"\d+")


def _periodic_tail(text: str, *, min_span: int, max_period: int) -> bool:
    if len(text) < min_span:
        return False
    # Candidate periods: where the last few characters occur again just before the end.
    key = text[-8:]
    horizon = len(text) - max_period - len(key)
    pos = text.rfind(key, max(0, horizon), len(text) - 1)
    while pos != -1:
        period = len(text) - len(key) - pos
        span = max(min_span, 3 * period)
        if span + period <= len(text) and text[-span:] == text[-span - period : -period]:
            return True
        pos = text.rfind(key, max(0, horizon), pos + len(key) - 1)
    return False


def _repeated_lines(text: str, *, window: int) -> bool:
    tail = text.rsplit("\n", 3 * window)[1:]
    lines = [_DIGITS.sub("#", ln.strip()) for ln in tail if ln.strip()]
    if len(lines) < window:
        return False
    tail = lines[-window:]
    return len(set(tail)) * 3 <= window


def is_runaway(
    text: str, *, min_span: int = 240, max_period: int = 400, window: int = 24, min_chars: int = 2_000
) -> bool:
    """``min_chars``: shorter outputs are never called runaway by the line check (p99 is ~2,100)."""
    stripped = text.rstrip()
    if _periodic_tail(stripped, min_span=min_span, max_period=max_period):
        return True
    return len(stripped) >= min_chars and _repeated_lines(stripped, window=window)
