"""Long chat text in windows that fit the model's context.

A prompt must leave room for the output: ``prompt tokens + max_tokens <=
context``. When an exchange is longer, :func:`plan_windows` cuts the request
and/or the response into overlapping pieces, each of which makes a prompt that
fits, so every part of the text is read by the model. The pipeline moderates
every window and the worst one decides (any harmful request or response part
makes the event harmful).

How an exchange is cut:

* prompt-only: windows over the request;
* a short request (at most half the room): the whole request in every window,
  windows over the response (and the other way round);
* both long: request and response each get half the room; window *i* pairs
  request piece *i* with response piece *i* (the last piece repeats when one
  side has fewer), so each piece of each side is read at least once.

Pieces are measured with the engine's own tokenizer (``count``): a first cut
from the text's characters-per-token, then shrunk until it fits; cuts prefer
whitespace. Neighbouring pieces share ``overlap`` tokens, so a phrase split at a
boundary is read whole in one of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from streams.prompt.template import build_prompt, neutralise

__all__ = ["TooLong", "Window", "plan_windows"]

Counter = Callable[[str], Awaitable[int]]

_SAFETY_TOKENS = 8
_MIN_ROOM_TOKENS = 32
_SNAP_FRACTION = 0.1  # look back this share of a piece for whitespace to cut at


class TooLong(ValueError):
    """The text needs more windows than allowed (or the context leaves no room for text)."""


@dataclass(frozen=True, slots=True)
class Window:
    index: int
    request: str
    response: str | None
    request_span: tuple[int, int]  # [start, end) in the original request, in characters
    response_span: tuple[int, int] | None

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "request_span": list(self.request_span),
            "response_span": list(self.response_span) if self.response_span else None,
        }


async def _tokens(count: Counter, text: str) -> int:
    return await count(neutralise(text)) if text else 0


def _snap_end(text: str, start: int, end: int) -> int:
    if end >= len(text):
        return len(text)
    floor = end - max(1, int((end - start) * _SNAP_FRACTION))
    cut = max(text.rfind(" ", floor, end), text.rfind("\n", floor, end))
    return cut + 1 if cut > start else end


async def _pieces(text: str, room: int, *, count: Counter, overlap: int, limit: int) -> list[tuple[int, int]]:
    """[start, end) spans of ``text``, each at most ``room`` tokens, neighbours sharing ~``overlap``."""
    total = await _tokens(count, text)
    if total <= room:
        return [(0, len(text))]
    per_token = len(text) / max(1, total)
    step = max(1, int(room * per_token * 0.9))
    back = min(int(overlap * per_token), step // 2)
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = _snap_end(text, start, min(len(text), start + step))
        while end - start > 1 and await _tokens(count, text[start:end]) > room:
            end = start + max(1, int((end - start) * 0.85))
        spans.append((start, end))
        if end >= len(text):
            return spans
        if len(spans) >= limit:
            raise TooLong(f"needs more than {limit} windows")
        start = max(end - back, start + 1)


async def plan_windows(
    request: str,
    response: str | None,
    *,
    budget: int,
    count: Counter,
    overlap: int = 64,
    max_windows: int = 16,
) -> list[Window]:
    """Windows whose prompts are each at most ``budget`` tokens (context minus ``max_tokens``)."""
    frame = await count(build_prompt("", None if response is None else ""))
    room = budget - frame - _SAFETY_TOKENS
    if room < _MIN_ROOM_TOKENS:
        raise TooLong(f"the context leaves {room} tokens for chat text")

    async def pieces(text: str, tokens: int) -> list[tuple[int, int]]:
        return await _pieces(text, tokens, count=count, overlap=overlap, limit=max_windows)

    if response is None:
        spans = await pieces(request, room)
        return [Window(i, request[a:b], None, (a, b), None) for i, (a, b) in enumerate(spans)]
    request_tokens = await _tokens(count, request)
    response_tokens = await _tokens(count, response)
    if request_tokens <= room // 2:
        asks, answers = [(0, len(request))], await pieces(response, room - request_tokens)
    elif response_tokens <= room // 2:
        asks, answers = await pieces(request, room - response_tokens), [(0, len(response))]
    else:
        asks, answers = await pieces(request, room // 2), await pieces(response, room - room // 2)
    total = max(len(asks), len(answers))
    if total > max_windows:
        raise TooLong(f"needs {total} windows, more than {max_windows}")
    windows = []
    for i in range(total):
        a, b = asks[min(i, len(asks) - 1)]
        c, d = answers[min(i, len(answers) - 1)]
        windows.append(Window(i, request[a:b], response[c:d], (a, b), (c, d)))
    return windows
