"""event → prompt → engine → parse → verdict, for one event. Pure: no Kafka here.

:func:`moderate_one` always returns a verdict for what the event itself does:
unreadable output, a rejected prompt, a runaway generation, or an engine that
keeps failing *while healthy* follow the fail policy (``engine_error`` /
``unparsed`` verdicts). An engine *outage* is not the event's doing: with an
:class:`~streams.engines.availability.EngineGate` the call waits for the engine
to come back (without spending attempts) and only an outage longer than the
gate's ``max_delay_s`` yields an ``engine_error`` verdict. Input too long for
the model's context is moderated in windows (see :mod:`streams.prompt.windows`).
Callers run it for many events concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from streams import metrics, telemetry
from streams.categorize import Categorizer, load_taxonomy
from streams.config import FailPolicy, LongText, RetryConfig, Settings
from streams.engines.availability import EngineGate
from streams.engines.base import GenerateOptions, Generation, GuardEngine
from streams.errors import EngineDead, EngineError, EngineOverloaded, EngineRejected, EngineUnavailable
from streams.event import ChatEvent
from streams.parse import (
    STOP_STRINGS,
    Answers,
    Completion,
    Harm,
    ParsedOutput,
    ParseStatus,
    continuation_prompt,
    early_answer,
    early_exit_applies,
    parse,
)
from streams.prompt import build_prompt
from streams.prompt.windows import TooLong, Window, plan_windows
from streams.verdict import Outcome, Timings, Verdict, categorize_verdict, route

__all__ = ["ModerationPolicy", "generate_with_retry", "moderate_one", "to_verdict"]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Result = Generation | EngineError


@dataclass(frozen=True, slots=True, kw_only=True)
class ModerationPolicy:
    options: GenerateOptions = GenerateOptions()
    retry: RetryConfig = RetryConfig()
    fail_policy: FailPolicy = FailPolicy.FAIL_CLOSED
    long_text: LongText = LongText.WINDOW
    window_overlap_tokens: int = 64
    max_windows: int = 16
    early_exit: bool = False  # prompt-only events: stop at Task 2 when Task 1's conclusion is explicit
    # Harm categories for harmful verdicts (None: verdicts get none).
    categorizer: Categorizer | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ModerationPolicy:
        engine = settings.engine
        return cls(
            options=GenerateOptions(
                max_tokens=engine.max_tokens,
                temperature=engine.temperature,
                top_p=engine.top_p,
                priority=engine.priority,
                timeout_s=engine.timeout_s,
                repetition_max_pattern=engine.repetition_max_pattern,
                repetition_min_count=engine.repetition_min_count,
            ),
            retry=settings.retry,
            fail_policy=settings.policy.fail_policy,
            long_text=settings.policy.long_text,
            window_overlap_tokens=settings.policy.window_overlap_tokens,
            max_windows=settings.policy.max_windows,
            early_exit=engine.early_exit,
            categorizer=Categorizer(load_taxonomy(settings.categories.taxonomy_file or None)),
        )


async def generate_with_retry(
    engine: GuardEngine, prompt: str, policy: ModerationPolicy, gate: EngineGate | None = None
) -> tuple[Result, int]:
    """The generation (or the last error) and how many attempts were made.

    ``policy.retry.attempts`` bounds the attempts that failed while the engine was
    healthy; attempts that failed because the engine was down (per ``gate``) are
    free: the call waits for the gate instead. ``EngineDead`` propagates (the
    worker must restart); ``EngineRejected`` is returned at once.
    """
    retry = policy.retry
    delay = retry.backoff_initial_s
    error: EngineError = EngineUnavailable("no attempt made")
    attempts = charged = 0
    while True:
        if gate is not None and not await gate.wait_open():
            return EngineUnavailable(f"engine outage longer than the allowed delay: {error}"), attempts
        attempts += 1
        try:
            return await engine.generate(prompt, policy.options), attempts
        except EngineDead:
            raise
        except EngineError as exc:
            error = exc
        except Exception as exc:  # an engine bug must become a verdict, not a crash loop on this input
            logger.exception('unexpected engine exception engine="%s"', engine.name)
            error = EngineUnavailable(f"unexpected {type(exc).__name__}: {exc}")
        if not error.retryable:
            return error, attempts
        overloaded = isinstance(error, EngineOverloaded)
        if gate is not None and not overloaded and await gate.report_failure(error):
            continue  # the engine is down: wait for it, this attempt does not count
        charged += 1
        if charged >= retry.attempts:
            return error, attempts
        wait = delay
        if overloaded and error.retry_after:  # type: ignore[attr-defined]
            wait = max(wait, min(error.retry_after, retry.retry_after_max_s))  # type: ignore[attr-defined]
        logger.warning(
            'engine error, retrying engine="%s" attempt=%d error="%s" backoff_s=%.2f',
            engine.name,
            attempts,
            error,
            wait,
        )
        await asyncio.sleep(wait)
        delay = min(delay * 2, retry.backoff_max_s)


@dataclass(slots=True)
class _Judged:
    """One engine result read for one event (or one window of it)."""

    result: Result
    attempts: int
    outcome: Outcome
    status: ParseStatus | None = None
    parsed: ParsedOutput | None = None
    window: Window | None = None
    answers: Answers = field(default_factory=Answers)
    early: bool = False  # the request answer was read from Task 1's conclusion (early exit)


def _judge(result: Result, attempts: int, has_response: bool, window: Window | None = None) -> _Judged:
    if isinstance(result, EngineError):
        return _Judged(result, attempts, Outcome.ENGINE_ERROR, window=window)
    parsed = parse(result.text, truncated=result.truncated, finish_reason=result.finish_reason)
    status = parsed.status(has_response=has_response)
    answers = parsed.answers
    if Harm.HARMFUL in (answers.request, answers.response):
        outcome = Outcome.HARMFUL
    elif status is ParseStatus.OK:
        outcome = Outcome.UNHARMFUL
    else:
        outcome = Outcome.UNPARSED
    return _Judged(result, attempts, outcome, status, parsed, window, answers)


_SEVERITY = {Outcome.HARMFUL: 3, Outcome.ENGINE_ERROR: 2, Outcome.UNPARSED: 1, Outcome.UNHARMFUL: 0}


def _worst(values: Sequence[Any], bad: Any, good: Any) -> Any:
    """``bad`` if any window says so, ``good`` if all do, else unknown (None)."""
    if bad in values:
        return bad
    return good if values and all(v is good for v in values) else None


def _combine(parts: Sequence[_Judged]) -> tuple[_Judged, Answers]:
    """The deciding window (the first of the worst outcome) and the answers over all windows."""
    deciding = max(parts, key=lambda p: _SEVERITY[p.outcome])
    answers = Answers(
        request=_worst([p.answers.request for p in parts], Harm.HARMFUL, Harm.UNHARMFUL),
        completion=_worst([p.answers.completion for p in parts], Completion.COMPLIANCE, Completion.REFUSAL),
        response=_worst([p.answers.response for p in parts], Harm.HARMFUL, Harm.UNHARMFUL),
        found_block=all(p.answers.found_block for p in parts),
        invalid=tuple(i for p in parts for i in p.answers.invalid),
    )
    return deciding, answers


def _window_summary(part: _Judged) -> dict[str, Any]:
    window = part.window.to_dict() if part.window is not None else {}
    generation = part.result if isinstance(part.result, Generation) else None
    return {
        **window,
        "outcome": part.outcome.value,
        "status": part.status.value if part.status else None,
        "answers": {
            "request": _v(part.answers.request),
            "completion": _v(part.answers.completion),
            "response": _v(part.answers.response),
        },
        "finish_reason": generation.finish_reason if generation else None,
        "error": None if generation else f"{type(part.result).__name__}: {part.result}",
    }


def _v(value: Harm | Completion | None) -> str | None:
    return value.value if value is not None else None


def _sum(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _verdict(
    event: ChatEvent,
    parts: Sequence[_Judged],
    *,
    engine: str,
    policy: ModerationPolicy,
    engine_s: float,
    picked_up: float | None,
    clock: Clock,
) -> Verdict:
    now = clock()
    picked = picked_up if picked_up is not None else now
    deciding, answers = _combine(parts) if len(parts) > 1 else (parts[0], parts[0].answers)
    outcome = deciding.outcome
    common: dict[str, Any] = {
        "event_id": event.id,
        "conversation_id": event.conversation_id,
        "user_id": event.user_id,
        "event_timestamp": event.timestamp,
        "has_response": event.response is not None,
        "engine": engine,
        "attempts": sum(p.attempts for p in parts),
        "timings": Timings(
            queue_ms=max(0.0, (picked - event.timestamp) * 1000),
            engine_ms=engine_s * 1000,
            total_ms=max(0.0, (now - event.timestamp) * 1000),
        ),
        "moderated_at": now,
        "actions": route(outcome, policy.fail_policy),
        "windows": tuple(_window_summary(p) for p in parts) if len(parts) > 1 else (),
        "cached": all(isinstance(p.result, Generation) and p.result.cached for p in parts),
        "early_exit": all(p.early for p in parts),
        "request_text": event.request,
        "response_text": event.response,
    }
    result = deciding.result
    if isinstance(result, EngineError):
        return Verdict(
            outcome=outcome,
            status=None,
            error=f"{type(result).__name__}: {result}",
            request=answers.request,
            completion=answers.completion,
            response=answers.response,
            **common,
        )
    generations = [p.result for p in parts if isinstance(p.result, Generation)]
    reason = (
        deciding.parsed.reason(has_response=event.response is not None)
        if deciding.parsed and not deciding.early
        else None
    )
    verdict = Verdict(
        outcome=outcome,
        status=deciding.status,
        parse_reason=reason.value if reason is not None else None,
        request=answers.request,
        completion=answers.completion,
        response=answers.response,
        reasoning=deciding.parsed.reasoning if deciding.parsed else (),
        raw=result.text,
        invalid=answers.invalid,
        model=result.model,
        prompt_tokens=_sum([g.prompt_tokens for g in generations]),
        completion_tokens=_sum([g.completion_tokens for g in generations]),
        finish_reason=result.finish_reason,
        **common,
    )
    return categorize_verdict(verdict, policy.categorizer) if policy.categorizer is not None else verdict


def to_verdict(
    event: ChatEvent,
    result: Result,
    *,
    engine: str,
    policy: ModerationPolicy,
    attempts: int = 1,
    engine_s: float = 0.0,
    picked_up: float | None = None,
    clock: Clock = time.time,
) -> Verdict:
    """The verdict for one event from one engine result (pure apart from ``clock``)."""
    part = _judge(result, attempts, event.response is not None)
    return _verdict(
        event, [part], engine=engine, policy=policy, engine_s=engine_s, picked_up=picked_up, clock=clock
    )


async def _windows(event: ChatEvent, engine: GuardEngine, policy: ModerationPolicy) -> list[Window] | None:
    """None when the event's prompt fits the model's context (the usual case, decided without
    tokenizing when the prompt's UTF-8 length already fits); else the windows to moderate.
    Raises :class:`TooLong` when the policy rejects long input or it needs too many windows."""
    context = engine.context_tokens
    if context is None:
        return None
    budget = context - policy.options.max_tokens
    prompt = build_prompt(event.request, event.response)
    # Every token is at least one byte for byte-level BPE tokenizers (Llama 3's), +2 for BOS/EOS.
    if len(prompt) * 4 + 2 <= budget or len(prompt.encode("utf-8", "surrogatepass")) + 2 <= budget:
        return None
    if await engine.count_tokens(prompt) <= budget:
        return None
    if policy.long_text is LongText.REJECT:
        raise TooLong("the prompt does not fit the model's context and POLICY_LONG_TEXT=reject")
    return await plan_windows(
        event.request,
        event.response,
        budget=budget,
        count=engine.count_tokens,
        overlap=policy.window_overlap_tokens,
        max_windows=policy.max_windows,
    )


async def _generate(
    engine: GuardEngine, prompt: str, policy: ModerationPolicy, gate: EngineGate | None
) -> tuple[Result, int]:
    options = policy.options
    with telemetry.engine_span(
        engine=engine.name,
        model=engine.model,
        max_tokens=options.max_tokens,
        temperature=options.temperature,
        top_p=options.top_p,
        prompt=prompt,
    ) as span:
        result, attempts = await generate_with_retry(engine, prompt, policy, gate)
        telemetry.record_generation(span, result, model=engine.model)
    return result, attempts


_EARLY_ANSWERED = metrics.EARLY_EXITS.labels("answered")
_EARLY_CONTINUED = metrics.EARLY_EXITS.labels("continued")


@lru_cache(maxsize=64)  # one policy per worker (a replay has its own): built once, not per event
def _stopping(policy: ModerationPolicy) -> ModerationPolicy:
    """``policy`` generating up to the first of :data:`STOP_STRINGS` (early exit)."""
    return replace(policy, options=replace(policy.options, stop=STOP_STRINGS))


async def _generate_early(
    engine: GuardEngine, prompt: str, request: str, policy: ModerationPolicy, gate: EngineGate | None
) -> _Judged:
    """A prompt-only event with early exit: generate up to Task 2; an explicit Task-1 conclusion
    is the verdict, anything else continues the same generation to the normal answer block
    (greedy decoding: the continued text is what one generation would have written)."""
    first, attempts = await _generate(engine, prompt, _stopping(policy), gate)
    stopped = first.stop_reason if isinstance(first, Generation) else None
    if not isinstance(first, Generation) or not stopped or not first.text.endswith(stopped):
        return _judge(first, attempts, has_response=False)  # an error, or it ended by itself
    prefix = first.text[: -len(stopped)]
    answer = early_answer(prefix, request)
    if answer is not None:
        _EARLY_ANSWERED.inc()
        result = replace(first, text=prefix)
        outcome = Outcome.HARMFUL if answer is Harm.HARMFUL else Outcome.UNHARMFUL
        answers = Answers(request=answer, found_block=True)
        parsed = parse(prefix, finish_reason=first.finish_reason)
        return _Judged(result, attempts, outcome, ParseStatus.OK, parsed, answers=answers, early=True)
    _EARLY_CONTINUED.inc()
    used = first.completion_tokens or 0
    more_policy = replace(
        policy, options=replace(policy.options, max_tokens=max(1, policy.options.max_tokens - used))
    )
    rest, more = await _generate(engine, continuation_prompt(prompt, first.text), more_policy, gate)
    if not isinstance(rest, Generation):
        return _judge(rest, attempts + more, has_response=False)
    whole = replace(
        rest,
        text=first.text + rest.text,
        prompt_tokens=first.prompt_tokens,
        completion_tokens=(first.completion_tokens or 0) + (rest.completion_tokens or 0)
        if first.completion_tokens is not None or rest.completion_tokens is not None
        else None,
        latency_s=first.latency_s + rest.latency_s,
        cached=first.cached and rest.cached,
    )
    return _judge(whole, attempts + more, has_response=False)


async def moderate_one(
    event: ChatEvent,
    engine: GuardEngine,
    policy: ModerationPolicy,
    *,
    gate: EngineGate | None = None,
    clock: Clock = time.time,
) -> Verdict:
    picked_up = clock()
    started = time.perf_counter()
    has_response = event.response is not None
    parts: list[_Judged]
    try:
        windows = await _windows(event, engine, policy)
    except TooLong as exc:
        windows, parts = (
            [],
            [_judge(EngineRejected(f"input too long for the model's context: {exc}"), 0, has_response)],
        )
        # fail_open is for engine trouble; input made too long to moderate must not pass unread
        policy = replace(policy, fail_policy=FailPolicy.FAIL_CLOSED)
    except EngineError as exc:  # the token count failed: send the prompt whole and let the engine decide
        logger.warning('token count failed, sending the prompt whole error="%s"', exc)
        windows = None
    if windows is None and policy.early_exit and early_exit_applies(event.request, event.response):
        parts = [
            await _generate_early(engine, build_prompt(event.request, None), event.request, policy, gate)
        ]
    elif windows is None:
        result, attempts = await _generate(engine, build_prompt(event.request, event.response), policy, gate)
        parts = [_judge(result, attempts, has_response)]
    elif windows:
        results = await asyncio.gather(
            *(_generate(engine, build_prompt(w.request, w.response), policy, gate) for w in windows)
        )
        parts = [_judge(r, a, has_response, w) for (r, a), w in zip(results, windows, strict=True)]
    return _verdict(
        event,
        parts,
        engine=engine.name,
        policy=policy,
        engine_s=time.perf_counter() - started,
        picked_up=picked_up,
        clock=clock,
    )
