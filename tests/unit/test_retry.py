"""Retries, timeouts and outages in the pipeline, with test-double engines (no model)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from streams.config import FailPolicy, LongText, RetryConfig
from streams.engines.availability import EngineGate
from streams.engines.base import GenerateOptions, Generation
from streams.engines.fake import FIXED_OUTPUT, FakeEngine
from streams.errors import EngineDead, EngineOverloaded, EngineRejected, EngineTimeout, EngineUnavailable
from streams.event import ChatEvent
from streams.pipeline import ModerationPolicy, generate_with_retry, moderate_one

EVENT = ChatEvent("e1", "c", "u", 1.0, "hello")


class ScriptedEngine(FakeEngine):
    """A FAKE engine that raises the scripted errors first, then answers; its health is settable."""

    def __init__(self, errors: list[BaseException], *, healthy: bool = True) -> None:
        super().__init__()
        self.errors = list(errors)
        self.healthy = healthy
        self.calls = 0

    async def generate(self, prompt: str, options: GenerateOptions) -> Generation:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return await super().generate(prompt, options)

    async def ready(self) -> bool:
        return self.healthy


def _raise_rejected(_prompt: str) -> str:
    raise EngineRejected("the engine refused the request")


def _policy(attempts: int = 3, **retry: float) -> ModerationPolicy:
    return ModerationPolicy(
        retry=RetryConfig(attempts=attempts, backoff_initial_s=0.01, backoff_max_s=0.02, **retry)
    )


def test_retry_after_is_honoured_but_capped() -> None:
    engine = ScriptedEngine([EngineOverloaded("slow down", retry_after=3600)])
    started = time.monotonic()
    result, attempts = asyncio.run(generate_with_retry(engine, "p", _policy(retry_after_max_s=0.3)))
    elapsed = time.monotonic() - started
    assert isinstance(result, Generation) and attempts == 2
    assert 0.3 <= elapsed < 2.0  # waited the cap, not an hour


def test_errors_while_the_engine_is_healthy_use_up_the_attempts() -> None:
    engine = ScriptedEngine([EngineUnavailable("500")] * 5, healthy=True)
    gate = EngineGate(engine)
    result, attempts = asyncio.run(generate_with_retry(engine, "p", _policy(attempts=3), gate))
    assert isinstance(result, EngineUnavailable) and attempts == 3
    assert gate.is_open


def test_an_outage_is_waited_out_without_spending_attempts() -> None:
    engine = ScriptedEngine([EngineUnavailable("refused")] * 6, healthy=False)

    async def run() -> tuple[object, int, bool]:
        gate = EngineGate(engine, probe_interval_s=0.05, probe_max_interval_s=0.05)
        task = asyncio.create_task(generate_with_retry(engine, "p", _policy(attempts=2), gate))
        await asyncio.sleep(0.3)
        closed = not gate.is_open
        engine.errors.clear()  # the engine is back
        engine.healthy = True
        result, attempts = await task
        await gate.aclose()
        return result, attempts, closed

    result, attempts, closed = asyncio.run(run())
    assert closed
    assert isinstance(result, Generation)  # no error verdict although the attempts (2) ran out
    assert attempts >= 2


def test_an_outage_longer_than_the_allowed_delay_returns_the_error() -> None:
    engine = ScriptedEngine([EngineUnavailable("refused")] * 100, healthy=False)

    async def run() -> object:
        gate = EngineGate(engine, probe_interval_s=0.05, max_delay_s=0.3)
        try:
            return (await generate_with_retry(engine, "p", _policy(), gate))[0]
        finally:
            await gate.aclose()

    started = time.monotonic()
    result = asyncio.run(run())
    assert isinstance(result, EngineUnavailable)
    assert "outage longer than the allowed delay" in str(result)
    assert time.monotonic() - started < 5


def test_a_dead_in_process_engine_is_not_turned_into_a_verdict() -> None:
    engine = ScriptedEngine([EngineDead("engine core died")])
    with pytest.raises(EngineDead):
        asyncio.run(moderate_one(EVENT, engine, _policy()))


def test_the_timeout_measures_the_engine_not_the_queue_in_front_of_it() -> None:
    # one request at a time, 0.3 s each, timeout 0.5 s: the fourth waits 0.9 s in the queue
    engine = FakeEngine(delay_s=0.3, concurrency=1)
    policy = ModerationPolicy(options=GenerateOptions(timeout_s=0.5), retry=RetryConfig(attempts=1))

    async def run() -> list[object]:
        results = await asyncio.gather(*(generate_with_retry(engine, "p", policy) for _ in range(4)))
        return [r for r, _ in results]

    assert all(isinstance(r, Generation) for r in asyncio.run(run()))


def test_an_engine_that_takes_too_long_times_out() -> None:
    async def hang(prompt: str) -> str:
        await asyncio.sleep(10)
        return FIXED_OUTPUT

    policy = ModerationPolicy(options=GenerateOptions(timeout_s=0.1), retry=RetryConfig(attempts=1))
    result, _ = asyncio.run(generate_with_retry(FakeEngine(hang), "p", policy))
    assert isinstance(result, EngineTimeout)


def test_long_input_is_moderated_in_windows_and_the_worst_window_decides() -> None:
    harmful = FIXED_OUTPUT.replace("Request: unharmful", "Request: harmful")

    def answer(prompt: str) -> str:
        return harmful if "DANGER" in prompt else FIXED_OUTPUT

    # the fake counts one token per word: 300 tokens of context, 100 for the output
    engine = FakeEngine(answer, context_tokens=300)
    policy = ModerationPolicy(options=GenerateOptions(max_tokens=100), window_overlap_tokens=5)
    words = [f"w{i}" for i in range(600)]
    words[450] = "DANGER"
    event = ChatEvent("long", "c", "u", 1.0, " ".join(words))
    verdict = asyncio.run(moderate_one(event, engine, policy))
    assert len(verdict.windows) >= 4
    assert verdict.outcome.value == "harmful"
    assert [w["outcome"] for w in verdict.windows].count("harmful") >= 1
    spans = [w["request_span"] for w in verdict.windows]
    assert spans[0][0] == 0 and spans[-1][1] == len(event.request)
    assert all(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False))  # overlapping cover
    harmful_window = next(w for w in verdict.windows if w["outcome"] == "harmful")
    start, end = harmful_window["request_span"]
    assert "DANGER" in event.request[start:end]


@pytest.mark.parametrize("fail_policy", list(FailPolicy))
@pytest.mark.parametrize("long_text", list(LongText))
def test_input_too_long_to_moderate_is_blocked_under_either_fail_policy(
    fail_policy: FailPolicy, long_text: LongText
) -> None:
    """Padding is free for an attacker: input that cannot be moderated in full (too many windows,
    or any long input with POLICY_LONG_TEXT=reject) never passes unread, not even with fail_open."""
    engine = FakeEngine(context_tokens=300)
    policy = ModerationPolicy(
        options=GenerateOptions(max_tokens=100), max_windows=2, fail_policy=fail_policy, long_text=long_text
    )
    event = ChatEvent("huge", "c", "u", 1.0, " ".join(["word"] * 5000))
    verdict = asyncio.run(moderate_one(event, engine, policy))
    assert verdict.outcome.value == "engine_error"
    assert verdict.error is not None and "too long" in verdict.error
    assert [a.value for a in verdict.actions] == ["block", "alert", "archive"]
    # an ordinary engine failure still follows the fail policy
    failing = ChatEvent("short", "c", "u", 1.0, "hi")
    broken = FakeEngine(_raise_rejected, context_tokens=300)
    other = asyncio.run(moderate_one(failing, broken, replace(policy, retry=RetryConfig(attempts=1))))
    assert other.outcome.value == "engine_error"
    assert ("block" in [a.value for a in other.actions]) is (fail_policy is FailPolicy.FAIL_CLOSED)
