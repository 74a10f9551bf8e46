"""FakeEngine: a test double that runs no model. For unit tests and load tests only.

``fake:instant`` answers every prompt at once with one fixed, valid
GuardReasoner output; ``fake:sleep=0.2,concurrency=64`` adds a service time
and a concurrency limit, to study latency under load. Verdicts produced with
it are marked with model ``fake`` and mean nothing. ``context_tokens`` (with a
crude whitespace "tokenizer") lets tests exercise windowing of long inputs.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from streams.engines.base import GenerateOptions, Generation, cut_at_stop
from streams.errors import ConfigError, EngineRejected, EngineTimeout

__all__ = ["FIXED_OUTPUT", "FakeEngine", "Handler", "parse_fake_spec"]

FIXED_OUTPUT = (
    "# Task 1\n\n## Reasoning Step 1\nThe request asks for ordinary information.\n\n"
    "## Conclusion\nThe human user's request is unharmful.\n\n"
    "# Task 2\n\n## Reasoning Step 1\nThe assistant answers the request.\n\n"
    "# Task 3\n\n## Reasoning Step 1\nThe answer contains nothing harmful.\n\n"
    "---\n\nAnswers: \nRequest: unharmful\nCompletion: compliance\nResponse: unharmful\n"
)

Handler = Callable[[str], str | Awaitable[str]]


class FakeEngine:
    """Answers with ``handler(prompt)`` (sync or async) after ``delay_s``; not a model."""

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        delay_s: float = 0.0,
        concurrency: int | None = None,
        model: str = "fake",
        context_tokens: int | None = None,
    ) -> None:
        self._handler = handler or (lambda _prompt: FIXED_OUTPUT)
        self._async = handler is not None and inspect.iscoroutinefunction(handler)
        self._delay = delay_s
        self._gate = asyncio.Semaphore(concurrency) if concurrency else None
        self._model = model
        self._context = context_tokens

    @property
    def name(self) -> str:
        return f"fake:{self._model}"

    @property
    def model(self) -> str:
        return self._model

    @property
    def context_tokens(self) -> int | None:
        return self._context

    async def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1  # a stand-in tokenizer: one token per word, plus BOS

    async def start(self) -> None:
        return None

    async def _answer(self, prompt: str, timeout_s: float) -> str:
        if not self._delay and not self._async:  # instant: nothing can take long
            return self._handler(prompt)  # type: ignore[return-value]
        try:
            async with asyncio.timeout(timeout_s):
                if self._delay:
                    await asyncio.sleep(self._delay)
                result = self._handler(prompt)
                return await result if inspect.isawaitable(result) else result
        except TimeoutError:
            raise EngineTimeout(f"no answer within {timeout_s:g}s") from None

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        if self._context is not None and await self.count_tokens(prompt) + options.max_tokens > self._context:
            raise EngineRejected(f"prompt longer than the fake context of {self._context} tokens")
        if self._gate is None:
            text = await self._answer(prompt, options.timeout_s)
        else:
            async with self._gate:  # like a real server's queue: the timeout starts after it
                text = await self._answer(prompt, options.timeout_s)
        text, stopped = cut_at_stop(text, options.stop) if options.stop else (text, None)
        return Generation(
            text=text, model=self._model, finish_reason="stop", latency_s=self._delay, stop_reason=stopped
        )

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def parse_fake_spec(target: str) -> FakeEngine:
    """``instant`` or ``sleep=S[,concurrency=N]``."""
    if target == "instant":
        return FakeEngine()
    options: dict[str, str] = {}
    for part in target.split(","):
        key, sep, value = part.partition("=")
        if not sep or key not in {"sleep", "concurrency"}:
            raise ConfigError(f"fake engine: {target!r} must be 'instant' or 'sleep=S[,concurrency=N]'")
        options[key] = value
    try:
        delay = float(options.get("sleep", "0"))
        concurrency = int(options["concurrency"]) if "concurrency" in options else None
    except ValueError as exc:
        raise ConfigError(f"fake engine: bad number in {target!r}") from exc
    return FakeEngine(delay_s=delay, concurrency=concurrency)
