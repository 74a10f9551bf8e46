"""A verdict cache: identical prompts for the same model and settings cost no engine call.

Chat repeats itself ("hi", "lol", spam waves, copy-pasted prompts). GuardReasoner is
decoded greedily, so the same prompt to the same model with the same generation
settings always yields the same output: caching it is exact, not an approximation.
:class:`CachingEngine` wraps any engine behind the same protocol. The key is a
SHA-256 of the model, the prompt-template version, the generation settings and
the prompt (the prompt already holds the chat text, neutralised). Entries are
bounded by count and by bytes and expire after a TTL; concurrent identical
prompts share one engine call (single flight). Errors are never cached; nor is
anything when sampling is not greedy (temperature > 0), where outputs differ.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from streams import metrics
from streams.engines.base import GenerateOptions, Generation, GuardEngine
from streams.prompt import INSTRUCTION

__all__ = ["CacheLimits", "CachingEngine", "PROMPT_VERSION"]

# Changes whenever the instruction (and so every prompt built from it) changes.
PROMPT_VERSION = hashlib.sha256(INSTRUCTION.encode()).hexdigest()[:12]
_HITS = metrics.CACHE_LOOKUPS.labels("hit")
_MISSES = metrics.CACHE_LOOKUPS.labels("miss")
_ENTRY_OVERHEAD = 256  # bytes per entry besides its text (key, Generation object, bookkeeping)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheLimits:
    max_entries: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    ttl_s: float = 3600.0


@dataclass(slots=True)
class _Entry:
    generation: Generation
    expires: float
    size: int


class CachingEngine:
    """``engine`` with a bounded, expiring cache of its outputs in front of it."""

    def __init__(
        self,
        engine: GuardEngine,
        limits: CacheLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._limits = limits or CacheLimits()
        self._clock = clock
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._bytes = 0
        self._pending: dict[bytes, asyncio.Future[Generation]] = {}
        self._settings: dict[tuple[str, GenerateOptions], bytes] = {}  # the key's settings part
        self.hits = 0
        self.misses = 0
        self._report()

    # -- the engine protocol, delegated -------------------------------------------------

    @property
    def name(self) -> str:
        return self._engine.name

    @property
    def model(self) -> str:
        return self._engine.model

    @property
    def context_tokens(self) -> int | None:
        return self._engine.context_tokens

    async def count_tokens(self, text: str) -> int:
        return await self._engine.count_tokens(text)

    async def start(self) -> None:
        await self._engine.start()

    async def ready(self) -> bool:
        return await self._engine.ready()

    async def aclose(self) -> None:
        self._entries.clear()
        self._bytes = 0
        await self._engine.aclose()

    # -- caching --------------------------------------------------------------------------

    @property
    def entries(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _key(self, prompt: str, options: GenerateOptions) -> bytes:
        model = self._engine.model  # read per call: a remote engine learns its model's name at start
        settings = self._settings.get((model, options))
        if settings is None:
            if len(self._settings) >= 64:  # a handful per worker; never unbounded
                self._settings.clear()
            settings = self._settings[model, options] = (
                f"{model}\0{PROMPT_VERSION}\0{options.max_tokens}\0{options.temperature}\0"
                f"{options.top_p}\0{options.repetition_max_pattern}\0{options.repetition_min_count}\0"
                f"{chr(1).join(options.stop)}\0"
            ).encode()
        return hashlib.sha256(settings + prompt.encode("utf-8", "surrogatepass")).digest()

    def _lookup(self, key: bytes) -> Generation | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._evict(key)
            return None
        self._entries.move_to_end(key)
        return entry.generation

    def _store(self, key: bytes, generation: Generation) -> None:
        size = len(generation.text.encode("utf-8", "surrogatepass")) + _ENTRY_OVERHEAD
        if size > self._limits.max_bytes or self._limits.max_entries <= 0:
            return
        if key in self._entries:
            self._evict(key)
        self._entries[key] = _Entry(generation, self._clock() + self._limits.ttl_s, size)
        self._bytes += size
        while len(self._entries) > self._limits.max_entries or self._bytes > self._limits.max_bytes:
            self._evict(next(iter(self._entries)))

    def _evict(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size

    def _report(self) -> None:
        """The gauges read this cache when scraped (not written per lookup: the hot path)."""
        ref = weakref.ref(self)

        def read(field: Callable[[CachingEngine], float]) -> Callable[[], float]:
            return lambda: field(cache) if (cache := ref()) is not None else 0.0

        metrics.CACHE_ENTRIES.set_function(read(lambda c: c.entries))
        metrics.CACHE_BYTES.set_function(read(lambda c: c.size_bytes))
        metrics.CACHE_HIT_RATIO.set_function(read(lambda c: c.hits / max(1, c.hits + c.misses)))

    def _hit(self, generation: Generation) -> Generation:
        self.hits += 1
        _HITS.inc()
        return replace(generation, cached=True, latency_s=0.0)

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        if options.temperature > 0:  # sampled outputs differ run to run: nothing to reuse
            return await self._engine.generate(prompt, options)
        key = self._key(prompt, options)
        found = self._lookup(key)
        if found is not None:
            return self._hit(found)
        pending = self._pending.get(key)
        if pending is not None:  # the same prompt is with the engine right now: share its answer
            await asyncio.wait([pending])
            if not pending.cancelled() and pending.exception() is None:
                return self._hit(pending.result())
            # the first caller failed or was cancelled: that is its own business, try ourselves
        self.misses += 1
        _MISSES.inc()
        future: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            generation = await self._engine.generate(prompt, options)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(generation)
        self._store(key, generation)
        return generation
