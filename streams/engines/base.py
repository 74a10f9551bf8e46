"""The engine protocol: one prompt in, one raw GuardReasoner output out.

Every engine (in-process vLLM, a remote vLLM server, transformers, recorded
playback, test fakes) implements :class:`GuardEngine`. The pipeline submits all
prompts of a batch concurrently, one ``generate`` call each, so engines with
continuous batching (vLLM) batch them themselves and slow requests never hold
up fast ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["GenerateOptions", "Generation", "GuardEngine", "cut_at_stop"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerateOptions:
    """Per-request sampling. Defaults are how GuardReasoner was evaluated (greedy)."""

    max_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    priority: int = 0  # lower runs first (vLLM's convention); replays use a higher number
    # Per attempt, on the engine's own work: time queued in front of the engine (behind
    # its concurrency limit) does not count. Engines raise EngineTimeout past it.
    timeout_s: float = 120.0
    repetition_max_pattern: int = 64  # stop on a repeating n-gram of up to this many tokens (0: off)
    repetition_min_count: int = 10  # ... repeated this many times in a row
    # Stop strings (early exit): generation ends at the first one, which is kept at the end of
    # the text, and Generation.stop_reason names it.
    stop: tuple[str, ...] = ()

    def repetition_detection(self) -> dict[str, int] | None:
        """vLLM's ``repetition_detection`` sampling parameter, or None when off."""
        if self.repetition_max_pattern <= 0 or self.repetition_min_count < 2:
            return None
        return {
            "max_pattern_size": self.repetition_max_pattern,
            "min_pattern_size": 1,
            "min_count": self.repetition_min_count,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Generation:
    """One raw output and what it cost.

    ``finish_reason`` is ``"stop"`` (the model ended), ``"length"`` (hit
    ``max_tokens``), ``"repetition"`` (vLLM's repetition detection stopped a
    loop) or ``None`` when the engine does not know (recorded playback).
    """

    text: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0
    cached: bool = False  # answered by the verdict cache (streams/engines/cache.py), no engine call
    stop_reason: str | None = None  # the stop string that ended generation (options.stop), if any

    @property
    def truncated(self) -> bool:
        return self.finish_reason in {"length", "repetition"}


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, str | None]:
    """``text`` up to and including the first stop string in it, and that string (None: none).

    What vLLM does with ``stop`` and ``include_stop_str_in_output``, for engines that
    generate a whole text first (recorded playback, test doubles, transformers).
    """
    first: tuple[int, str] | None = None
    for string in stop:
        at = text.find(string)
        if at >= 0 and (first is None or at < first[0]):
            first = (at, string)
    if first is None:
        return text, None
    return text[: first[0] + len(first[1])], first[1]


@runtime_checkable
class GuardEngine(Protocol):
    """What the pipeline needs from a guard engine."""

    @property
    def name(self) -> str:
        """Engine kind and target, e.g. ``vllm:/models/GuardReasoner-1B`` (for logs and verdicts)."""
        ...

    @property
    def model(self) -> str:
        """Model id reported on verdicts."""
        ...

    async def start(self) -> None:
        """Load weights / open connections. Idempotent. Raises ``EngineUnavailable`` or ``ModelNotFound``."""
        ...

    @property
    def context_tokens(self) -> int | None:
        """The model's context length in tokens (prompt + output), known once started;
        None where no limit applies (recorded playback, test doubles)."""
        ...

    async def count_tokens(self, text: str) -> int:
        """How many prompt tokens ``text`` is for this model (only asked when ``context_tokens``
        is set, and only for prompts that may not fit)."""
        ...

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        """Generate for one prompt. Safe to call concurrently.

        Enforces ``options.timeout_s`` on its own work (not on time queued in front
        of it). Raises an :class:`~streams.errors.EngineError` subclass on failure:
        ``EngineRejected`` means retrying cannot help, ``EngineDead`` that the engine
        will not recover without a restart.
        """
        ...

    async def ready(self) -> bool:
        """Cheap readiness probe (for health endpoints)."""
        ...

    async def aclose(self) -> None:
        """Release the engine. Idempotent."""
        ...
