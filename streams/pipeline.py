"""event → prompt → engine → parse → verdict, for one event. Pure: no Kafka here.

:func:`moderate_one` retries retryable engine errors with exponential backoff
and always returns a verdict: an engine that keeps failing (or raises something
unexpected) yields an ``engine_error`` verdict, never an exception and never a
dropped event. Callers run it for every event of a batch concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from streams import telemetry
from streams.config import FailPolicy, RetryConfig, Settings
from streams.engines.base import GenerateOptions, Generation, GuardEngine
from streams.errors import EngineError, EngineOverloaded, EngineTimeout, EngineUnavailable
from streams.event import ChatEvent
from streams.parse import Harm, ParseStatus, parse
from streams.prompt import build_prompt
from streams.verdict import Outcome, Timings, Verdict, route

__all__ = ["ModerationPolicy", "generate_with_retry", "moderate_one", "to_verdict"]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModerationPolicy:
    options: GenerateOptions = GenerateOptions()
    retry: RetryConfig = RetryConfig()
    timeout_s: float = 120.0
    fail_policy: FailPolicy = FailPolicy.FAIL_CLOSED

    @classmethod
    def from_settings(cls, settings: Settings) -> ModerationPolicy:
        engine = settings.engine
        return cls(
            options=GenerateOptions(
                max_tokens=engine.max_tokens,
                temperature=engine.temperature,
                top_p=engine.top_p,
                priority=engine.priority,
                repetition_max_pattern=engine.repetition_max_pattern,
                repetition_min_count=engine.repetition_min_count,
            ),
            retry=settings.retry,
            timeout_s=engine.timeout_s,
            fail_policy=settings.policy.fail_policy,
        )


async def generate_with_retry(
    engine: GuardEngine, prompt: str, policy: ModerationPolicy
) -> tuple[Generation | EngineError, int]:
    """The generation (or the last error) and how many attempts it took."""
    delay = policy.retry.backoff_initial_s
    error: EngineError = EngineError("no attempt made")
    for attempt in range(1, max(1, policy.retry.attempts) + 1):
        try:
            async with asyncio.timeout(policy.timeout_s):
                return await engine.generate(prompt, policy.options), attempt
        except TimeoutError:
            error = EngineTimeout(f"no answer within {policy.timeout_s:g}s")
        except EngineError as exc:
            error = exc
        except Exception as exc:  # an engine bug must become a verdict, not a crash loop on this input
            logger.exception('unexpected engine exception engine="%s"', engine.name)
            error = EngineUnavailable(f"unexpected {type(exc).__name__}: {exc}")
        if not error.retryable or attempt >= policy.retry.attempts:
            return error, attempt
        wait = delay
        if isinstance(error, EngineOverloaded) and error.retry_after:
            wait = max(wait, error.retry_after)
        logger.warning(
            'engine error, retrying engine="%s" attempt=%d error="%s" backoff_s=%.2f',
            engine.name,
            attempt,
            error,
            wait,
        )
        await asyncio.sleep(wait)
        delay = min(delay * 2, policy.retry.backoff_max_s)
    return error, policy.retry.attempts


def to_verdict(
    event: ChatEvent,
    result: Generation | EngineError,
    *,
    engine: str,
    policy: ModerationPolicy,
    attempts: int = 1,
    engine_s: float = 0.0,
    picked_up: float | None = None,
    clock: Clock = time.time,
) -> Verdict:
    """Build the verdict for one event from the engine's result (pure apart from ``clock``)."""
    now = clock()
    picked = picked_up if picked_up is not None else now
    timings = Timings(
        queue_ms=max(0.0, (picked - event.timestamp) * 1000),
        engine_ms=engine_s * 1000,
        total_ms=max(0.0, (now - event.timestamp) * 1000),
    )
    common = {
        "event_id": event.id,
        "conversation_id": event.conversation_id,
        "user_id": event.user_id,
        "event_timestamp": event.timestamp,
        "has_response": event.response is not None,
        "engine": engine,
        "attempts": attempts,
        "timings": timings,
        "moderated_at": now,
    }
    if isinstance(result, EngineError):
        outcome = Outcome.ENGINE_ERROR
        return Verdict(
            outcome=outcome,
            status=None,
            error=f"{type(result).__name__}: {result}",
            actions=route(outcome, policy.fail_policy),
            **common,  # type: ignore[arg-type]
        )
    parsed = parse(result.text, truncated=result.truncated)
    status = parsed.status(has_response=event.response is not None)
    answers = parsed.answers
    if Harm.HARMFUL in (answers.request, answers.response):
        outcome = Outcome.HARMFUL
    elif status is ParseStatus.OK:
        outcome = Outcome.UNHARMFUL
    else:
        outcome = Outcome.UNPARSED
    return Verdict(
        outcome=outcome,
        status=status,
        request=answers.request,
        completion=answers.completion,
        response=answers.response,
        reasoning=parsed.reasoning,
        raw=result.text,
        invalid=answers.invalid,
        model=result.model,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        finish_reason=result.finish_reason,
        actions=route(outcome, policy.fail_policy),
        **common,  # type: ignore[arg-type]
    )


async def moderate_one(
    event: ChatEvent, engine: GuardEngine, policy: ModerationPolicy, *, clock: Clock = time.time
) -> Verdict:
    picked_up = clock()
    started = time.perf_counter()
    prompt = build_prompt(event.request, event.response)
    if telemetry.is_enabled():
        options = policy.options
        with telemetry.engine_span(
            engine=engine.name,
            model=engine.model,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            prompt=prompt,
        ) as span:
            result, attempts = await generate_with_retry(engine, prompt, policy)
            telemetry.record_generation(span, result, model=engine.model)
    else:
        result, attempts = await generate_with_retry(engine, prompt, policy)
    return to_verdict(
        event,
        result,
        engine=engine.name,
        policy=policy,
        attempts=attempts,
        engine_s=time.perf_counter() - started,
        picked_up=picked_up,
        clock=clock,
    )
