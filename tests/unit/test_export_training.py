"""Which output becomes training data for a reviewed event (pure selection rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from streams.export.training import (
    Candidate,
    ExportFormat,
    LabelledEvent,
    Skipped,
    SkipReason,
    agreeing_outputs,
    prompt_input,
    training_record,
)
from streams.prompt import INSTRUCTION

T0 = datetime(2026, 11, 28, tzinfo=UTC)
HARMFUL = {"request": "harmful", "completion": "compliance", "response": "harmful"}
SAFE = {"request": "harmful", "completion": "refusal", "response": "unharmful"}


def output(
    verdict_id: int,
    answers: dict[str, str | None],
    *,
    run_id: str = "",
    status: str = "ok",
    text: str | None = "ask",
    minutes: int = 0,
) -> Candidate:
    return Candidate(
        verdict_id=verdict_id,
        run_id=run_id,
        model=f"m{verdict_id}",
        status=status,
        answers=answers,
        raw=f"reasoning {verdict_id}\nAnswers: ..." if status != "none" else "",
        has_response=True,
        request_text=text,
        response_text="reply" if text else None,
        moderated_at=T0 + timedelta(minutes=minutes),
    )


def event(
    action: str, label: dict[str, str | None], *candidates: Candidate, reviewed: int = 1
) -> LabelledEvent:
    return LabelledEvent(
        event_id="e",
        review_id="r",
        action=action,
        label=label,
        reviewed_verdict_id=reviewed,
        candidates=candidates,
    )


def test_a_confirmation_trains_on_the_confirmed_output() -> None:
    record = training_record(
        event("confirm", SAFE, output(1, SAFE), output(2, SAFE, run_id="x")), ExportFormat.SFT
    )
    assert record == {
        "instruction": INSTRUCTION,
        "input": prompt_input("ask", "reply"),
        "output": "reasoning 1\nAnswers: ...",
    }


def test_a_correction_trains_on_another_output_that_agrees_and_pairs_it_with_the_corrected_one() -> None:
    ev = event(
        "correct",
        SAFE,
        output(1, HARMFUL),
        output(2, SAFE, run_id="late", minutes=9),
        output(3, SAFE, run_id="early", status="partial", minutes=1),  # not read cleanly: no support
        output(4, SAFE, run_id="early2", minutes=2),
    )
    assert [c.verdict_id for c in agreeing_outputs(ev)] == [4, 2]
    sft = training_record(ev, ExportFormat.SFT)
    assert isinstance(sft, dict) and sft["output"] == "reasoning 4\nAnswers: ..."
    dpo = training_record(ev, ExportFormat.DPO)
    assert dpo == {
        "instruction": INSTRUCTION,
        "input": prompt_input("ask", "reply"),
        "chosen": "reasoning 4\nAnswers: ...",
        "rejected": "reasoning 1\nAnswers: ...",
    }


def test_nothing_is_invented() -> None:
    lonely = event("correct", SAFE, output(1, HARMFUL))
    for fmt in ExportFormat:
        assert training_record(lonely, fmt) == Skipped("e", "r", SkipReason.NO_AGREEING_OUTPUT)
    silent = event("confirm", SAFE, output(1, SAFE, text=None))
    assert training_record(silent, ExportFormat.SFT) == Skipped("e", "r", SkipReason.NO_CHAT_TEXT)
    assert training_record(event("confirm", SAFE, output(1, SAFE)), ExportFormat.DPO) == Skipped(
        "e", "r", SkipReason.NOT_A_CORRECTION
    )
    tags_only = event("correct", SAFE, output(1, SAFE), output(2, SAFE, run_id="x"))
    assert training_record(tags_only, ExportFormat.DPO) == Skipped("e", "r", SkipReason.ANSWERS_UNCHANGED)
    failed = event(
        "correct", SAFE, output(1, {"request": None, "completion": None, "response": None}, status="none")
    )
    assert training_record(failed, ExportFormat.DPO) == Skipped("e", "r", SkipReason.NO_REJECTED_OUTPUT)


def test_the_input_is_byte_for_byte_guardreasoners(shared: Path) -> None:
    from streams.eval import load_benchmark

    path = shared / "benchmark" / "0_5_harmbench_response.json"
    raw = orjson.loads(path.read_bytes())
    for sample in load_benchmark(path).samples:
        assert prompt_input(sample.request, sample.response) == raw[sample.index]["input"]
        assert raw[sample.index]["instruction"] == INSTRUCTION
