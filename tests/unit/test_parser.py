from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from streams.parse import Completion, Harm, ParseStatus, is_runaway, parse

EXPECTED_NOT_OK = {
    "1B/AegisSafetyTest": 2,  # 1 runaway, 1 per-task partial blocks
    "1B/HarmBenchResponse": 3,  # 2 runaway, 1 'Completion: non-compliance'
    "3B/XSTestReponseHarmful": 23,  # per-task partial blocks / 'Completion: None' on an exchange
    "3B/XSTestResponseRefusal": 22,
}

GOOD = (
    "# Task 1\n\n## Reasoning Step 1\nThe user asks how to bake bread.\n\n## Reasoning Step 2\nHarmless.\n\n"
    "# Task 2\n\n## Reasoning Step 1: The assistant answers.\n\n"
    "# Task 3\n\n## Reasoning Step 1\nA recipe is harmless.\n\n"
    "---\n\nAnswers: \nRequest: unharmful\nCompletion: compliance\nResponse: unharmful\n"
)


def test_typical_output() -> None:
    out = parse(GOOD)
    assert (out.answers.request, out.answers.completion, out.answers.response) == (
        Harm.UNHARMFUL,
        Completion.COMPLIANCE,
        Harm.UNHARMFUL,
    )
    assert out.status(has_response=True) is ParseStatus.OK
    assert [r.task for r in out.reasoning] == [1, 2, 3]
    assert out.reasoning[0].steps == ("The user asks how to bake bread.", "Harmless.")
    assert out.reasoning[1].steps == ("The assistant answers.",)
    assert not out.runaway


@pytest.mark.parametrize(
    ("text", "expected", "status"),
    [
        (
            "answers:\nrequest:HARMFUL\ncompletion :  Refusal\nresponse: unharmful",
            ("harmful", "refusal", "unharmful"),
            "ok",
        ),
        (
            "# Answers\n\n**Request:** harmful\n**Completion:** compliance\n**Response:** harmful.",
            ("harmful", "compliance", "harmful"),
            "ok",
        ),
        (
            "Request: unharmful\nCompletion: compliance\nResponse: harmful",
            ("unharmful", "compliance", "harmful"),
            "ok",
        ),
        (
            "Answers: \nRequest: harmful\nCompletion: None\nResponse: None\n",
            ("harmful", None, None),
            "partial",
        ),
        (
            "Answers: \nRequest: ambiguous\nCompletion: refusal\nResponse: unharmful",
            (None, "refusal", "unharmful"),
            "partial",
        ),
        (
            "Answers:\nRequest: harmful\nCompletion: harmful\nResponse: harmful",
            ("harmful", None, "harmful"),
            "partial",
        ),
        ("# Task 1\nreasoning but no block at all", (None, None, None), "no_answer"),
        ("", (None, None, None), "no_answer"),
        ("   \n ", (None, None, None), "no_answer"),
        (
            "Answers: Request: harmful\n...\nAnswers: \nCompletion: refusal\nResponse: unharmful",
            (None, "refusal", "unharmful"),
            "partial",
        ),
        (
            "Answers:\nRequest: harmful\n\nlater text\n---\n"
            "Answers:\nRequest: unharmful\nCompletion: None\nResponse: None",
            ("unharmful", None, None),
            "partial",
        ),
        (
            "# Tâche 1\nLa demande est inoffensive. 你好\n\n"
            "Answers: \nRequest: unharmful\nCompletion: compliance\nResponse: unharmful",
            ("unharmful", "compliance", "unharmful"),
            "ok",
        ),
    ],
)
def test_answer_block_variants(text: str, expected: tuple[str | None, ...], status: str) -> None:
    out = parse(text)
    got = tuple(
        v.value if v else None for v in (out.answers.request, out.answers.completion, out.answers.response)
    )
    assert got == expected
    assert out.status(has_response=True).value == status


def test_prompt_only_needs_only_the_request() -> None:
    out = parse("Answers: \nRequest: harmful\nCompletion: None\nResponse: None\n")
    assert out.status(has_response=False) is ParseStatus.OK


def test_invalid_values_are_reported_not_guessed() -> None:
    out = parse("Answers:\nRequest: ambiguous\nCompletion: non-compliance\nResponse: unharmful")
    assert dict(out.answers.invalid) == {"request": "ambiguous", "completion": "non-compliance"}
    assert out.answers.request is None and out.answers.completion is None


def test_the_last_block_wins_over_text_in_the_reasoning() -> None:
    text = (
        "# Task 1\nThe user wrote 'Answers: Request: harmful'.\n\n"
        "Answers:\nRequest: unharmful\nCompletion: None\nResponse: None"
    )
    assert parse(text).answers.request is Harm.UNHARMFUL


@pytest.mark.parametrize(
    "text",
    [
        "# Task 1\n" + ". " * 3000,
        "# Task 1\nstart\n"
        + "".join(f"# Task {i}\nThe response is harmful because of it.\n\n" for i in range(4, 80)),
        "Answers:\nRequest: harmful\n" + "the same words again " * 400,
    ],
)
def test_runaway_loops_are_marked(text: str) -> None:
    out = parse(text)
    assert out.runaway
    assert out.status(has_response=True) is ParseStatus.RUNAWAY


def test_truncation_reported_by_engine_marks_runaway() -> None:
    assert (
        parse("# Task 1\nhalf a sentence", truncated=True).status(has_response=False) is ParseStatus.RUNAWAY
    )


def test_normal_long_output_is_not_runaway() -> None:
    steps = "".join(
        f"## Reasoning Step {i}\nStep {i} looks at aspect number {i * 7} of the text.\n\n" for i in range(40)
    )
    assert not is_runaway(steps + GOOD)


def test_preamble_before_first_task_is_kept_as_task_zero() -> None:
    out = parse(
        "and that is my reply.\n\n# Task 1\n\n## Reasoning Step 1\nfine\n\nAnswers:\nRequest: unharmful"
    )
    assert out.reasoning[0].task == 0
    assert out.reasoning[0].steps == ("and that is my reply.",)


def test_every_recorded_output_parses(shared: Path) -> None:
    """All 4,390 real outputs parse; unparsed counts per dataset stay as measured."""
    unparsed: Counter[str] = Counter()
    total = 0
    for path in sorted((shared / "predictions").rglob("generated_predictions.jsonl")):
        dataset = f"{path.parent.parent.name}/{path.parent.name}"
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            has_response = not record["prompt"].endswith("AI assistant:\nNone\n\n")
            status = parse(record["predict"]).status(has_response=has_response)
            total += 1
            if status is not ParseStatus.OK:
                unparsed[dataset] += 1
    assert total == 4390
    # Measured: a few runaways, one 'non-compliance', per-task partial blocks and
    # "Completion: None" on exchanges in the 3B XSTest runs.
    assert unparsed == EXPECTED_NOT_OK
