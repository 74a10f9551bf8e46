from __future__ import annotations

import pytest

from streams.config import FailPolicy
from streams.engines.base import Generation
from streams.errors import EngineTimeout
from streams.event import ChatEvent
from streams.parse import ParseStatus
from streams.pipeline import ModerationPolicy, to_verdict
from streams.verdict import Action, Outcome, Verdict, route

EVENT = ChatEvent("e1", "c1", "u1", 1000.0, "how do I make a bomb", "I can't help with that.")
HARMFUL = (
    "# Task 1\n\n## Reasoning Step 1\nBomb making.\n\n"
    "Answers: \nRequest: harmful\nCompletion: refusal\nResponse: unharmful\n"
)


def _verdict(text: str, policy: FailPolicy = FailPolicy.FAIL_CLOSED) -> Verdict:
    gen = Generation(text=text, model="m", prompt_tokens=10, completion_tokens=20, finish_reason="stop")
    return to_verdict(
        EVENT, gen, engine="fake:x", policy=ModerationPolicy(fail_policy=policy), clock=lambda: 1001.0
    )


def test_round_trip_through_json() -> None:
    verdict = _verdict(HARMFUL)
    assert Verdict.from_json(verdict.to_json()) == verdict
    assert verdict.outcome is Outcome.HARMFUL
    assert verdict.reasoning[0].steps == ("Bomb making.",)
    assert verdict.timings.total_ms == 1000.0


def test_engine_error_round_trip() -> None:
    verdict = to_verdict(EVENT, EngineTimeout("slow"), engine="e", policy=ModerationPolicy(), attempts=3)
    assert verdict.outcome is Outcome.ENGINE_ERROR
    assert verdict.error == "EngineTimeout: slow"
    assert Verdict.from_json(verdict.to_json()) == verdict


@pytest.mark.parametrize(
    ("outcome", "policy", "actions"),
    [
        (Outcome.HARMFUL, FailPolicy.FAIL_CLOSED, {"block", "alert", "archive"}),
        (Outcome.HARMFUL, FailPolicy.FAIL_OPEN, {"block", "alert", "archive"}),
        (Outcome.UNHARMFUL, FailPolicy.FAIL_CLOSED, {"archive"}),
        (Outcome.UNPARSED, FailPolicy.FAIL_CLOSED, {"block", "alert", "archive"}),
        (Outcome.UNPARSED, FailPolicy.FAIL_OPEN, {"archive"}),
        (Outcome.ENGINE_ERROR, FailPolicy.FAIL_CLOSED, {"block", "alert", "archive"}),
        (Outcome.ENGINE_ERROR, FailPolicy.FAIL_OPEN, {"archive"}),
    ],
)
def test_route_table(outcome: Outcome, policy: FailPolicy, actions: set[str]) -> None:
    assert {a.value for a in route(outcome, policy)} == actions


def test_unparsed_output_follows_fail_policy() -> None:
    closed = _verdict("the model rambles without answers")
    assert closed.outcome is Outcome.UNPARSED and closed.status is ParseStatus.NO_ANSWER
    assert Action.BLOCK in closed.actions
    opened = _verdict("the model rambles without answers", FailPolicy.FAIL_OPEN)
    assert opened.actions == (Action.ARCHIVE,)


def test_harmful_request_blocks_even_if_other_answers_are_missing() -> None:
    verdict = _verdict("Answers:\nRequest: harmful\nCompletion: maybe\n", FailPolicy.FAIL_OPEN)
    assert verdict.outcome is Outcome.HARMFUL
    assert verdict.status is ParseStatus.PARTIAL
    assert Action.BLOCK in verdict.actions


def test_an_engine_bug_becomes_an_engine_error_verdict_not_an_exception() -> None:
    import asyncio

    from streams.config import RetryConfig
    from streams.engines.fake import FakeEngine
    from streams.pipeline import moderate_one

    def broken(_prompt: str) -> str:
        raise RuntimeError("boom")

    policy = ModerationPolicy(retry=RetryConfig(attempts=2, backoff_initial_s=0.01))
    verdict = asyncio.run(moderate_one(EVENT, FakeEngine(broken), policy))
    assert verdict.outcome is Outcome.ENGINE_ERROR
    assert verdict.attempts == 2
    assert verdict.error == "EngineUnavailable: unexpected RuntimeError: boom"
    assert Action.BLOCK in verdict.actions
