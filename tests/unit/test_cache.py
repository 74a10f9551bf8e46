"""The verdict cache in front of an engine double that counts its calls (no model)."""

from __future__ import annotations

import asyncio

import pytest

from streams.engines.base import GenerateOptions, Generation
from streams.engines.cache import CacheLimits, CachingEngine
from streams.engines.fake import FIXED_OUTPUT, FakeEngine
from streams.errors import EngineUnavailable
from streams.event import ChatEvent
from streams.pipeline import ModerationPolicy, moderate_one

OPTIONS = GenerateOptions()


class CountingEngine(FakeEngine):
    """A FAKE engine that counts calls; ``model`` and failures are settable."""

    def __init__(self, model: str = "m1", delay_s: float = 0.0) -> None:
        super().__init__(lambda p: FIXED_OUTPUT + p[-8:], model=model, delay_s=delay_s)
        self.calls = 0
        self.fail = False

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        self.calls += 1
        if self.fail:
            raise EngineUnavailable("down")
        return await super().generate(prompt, options)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_identical_prompts_hit_and_say_so() -> None:
    engine = CountingEngine()
    cache = CachingEngine(engine)

    async def run() -> list[Generation]:
        return [await cache.generate(p, OPTIONS) for p in ("a", "b", "a", "a")]

    first, _, again, third = _run(run())  # type: ignore[misc]
    assert engine.calls == 2
    assert (first.cached, again.cached, third.cached) == (False, True, True)
    assert again.text == first.text
    assert (cache.hits, cache.misses, cache.entries) == (2, 2, 2)


def test_a_different_model_or_setting_misses() -> None:
    engine = CountingEngine()
    cache = CachingEngine(engine)

    async def run() -> None:
        await cache.generate("p", OPTIONS)
        await cache.generate("p", GenerateOptions(max_tokens=OPTIONS.max_tokens + 1))
        await cache.generate("p", GenerateOptions(repetition_min_count=3))
        assert engine.calls == 3
        engine._model = "m2"  # a new model behind the same worker
        await cache.generate("p", OPTIONS)
        assert engine.calls == 4  # the same options, another model: a miss
        await cache.generate("p", GenerateOptions(priority=7, timeout_s=5))  # not part of the output

    _run(run())
    assert engine.calls == 4


def test_entries_are_bounded_by_count_and_by_bytes() -> None:
    engine = CountingEngine()
    by_count = CachingEngine(engine, CacheLimits(max_entries=3))
    by_bytes = CachingEngine(engine, CacheLimits(max_bytes=3 * (len(FIXED_OUTPUT) + 8 + 256)))

    async def run(cache: CachingEngine) -> None:
        for i in range(10):
            await cache.generate(f"prompt-{i}", OPTIONS)

    for cache in (by_count, by_bytes):
        _run(run(cache))
        assert cache.entries == 3
        assert cache.size_bytes <= 3 * (len(FIXED_OUTPUT) + 8 + 256)
    before = engine.calls
    _run(by_count.generate("prompt-9", OPTIONS))  # the newest stayed
    _run(by_count.generate("prompt-0", OPTIONS))  # the oldest was evicted
    assert engine.calls == before + 1


def test_entries_expire() -> None:
    engine, clock = CountingEngine(), Clock()
    cache = CachingEngine(engine, CacheLimits(ttl_s=10), clock=clock)
    _run(cache.generate("p", OPTIONS))
    clock.now = 9.9
    _run(cache.generate("p", OPTIONS))
    clock.now = 10.1
    _run(cache.generate("p", OPTIONS))
    assert engine.calls == 2


def test_concurrent_identical_prompts_share_one_engine_call() -> None:
    engine = CountingEngine(delay_s=0.05)
    cache = CachingEngine(engine)

    async def run() -> list[Generation]:
        return list(await asyncio.gather(*(cache.generate("spam", OPTIONS) for _ in range(20))))

    results = _run(run())
    assert engine.calls == 1
    assert sum(r.cached for r in results) == 19  # type: ignore[attr-defined]


def test_errors_and_sampled_outputs_are_not_cached() -> None:
    engine = CountingEngine()
    cache = CachingEngine(engine)
    engine.fail = True
    with pytest.raises(EngineUnavailable):
        _run(cache.generate("p", OPTIONS))
    engine.fail = False
    _run(cache.generate("p", OPTIONS))
    sampled = GenerateOptions(temperature=0.7)
    _run(cache.generate("q", sampled))
    _run(cache.generate("q", sampled))
    assert engine.calls == 4


def test_the_verdict_says_cached() -> None:
    cache = CachingEngine(CountingEngine())
    event = ChatEvent("e1", "c", "u", 1.0, "hello")

    async def run() -> tuple[bool, bool]:
        first = await moderate_one(event, cache, ModerationPolicy())
        second = await moderate_one(event, cache, ModerationPolicy())
        return first.cached, second.cached

    assert _run(run()) == (False, True)
    assert cache.hits == 1
