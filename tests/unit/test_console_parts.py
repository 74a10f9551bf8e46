"""Console pieces without a server: filters, cursors, review rules, passwords, reasoning, charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.console.charts import Series, line_chart, nice_max, stacked_bar_chart
from streams.console.forms import FilterError, filter_params, parse_cursor, parse_filter, parse_limit
from streams.console.reasoning import deciding_step, reasoning_tasks
from streams.store.passwords import hash_password, verify_password
from streams.store.queue import Cursor, QueueFilter, QueueItem
from streams.store.reviews import ReviewError, decide_review
from streams.store.roles import Role

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def item(
    answers: dict[str, str | None], *, has_response: bool = True, tags: tuple[str, ...] = ()
) -> QueueItem:
    return QueueItem(
        id=1,
        event_id="e",
        run_id="",
        source="archive",
        moderated_at=NOW,
        outcome="harmful",
        status="ok",
        answers=answers,
        has_response=has_response,
        model="GR",
        tags=tags,
        reviewed_at=None,
        flipped=False,
        original_outcome=None,
        original_model=None,
        original_answers=None,
    )


FULL = {"request": "harmful", "completion": "compliance", "response": "harmful"}


def test_filters_parse_every_parameter() -> None:
    f = parse_filter(
        {
            "outcome": "harmful,undecided",
            "category": "S10",
            "model": "GR-3B",
            "since": "2026-11-28T09:00",
            "until": "1795000000",
            "reviewed": "no",
            "flips": "true",
            "run": "r1",
        }
    )
    assert f.outcomes == ("harmful", "unparsed", "engine_error")
    assert f.category == "S10" and f.model == "GR-3B" and f.run_id == "r1"
    assert f.since == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)  # no zone given: UTC
    assert f.until == datetime.fromtimestamp(1795000000, UTC)
    assert f.reviewed is False and f.flips is True
    assert parse_filter(filter_params(f)) == f  # links to the next page keep the filter
    assert parse_filter({}) == QueueFilter()


@pytest.mark.parametrize(
    "query",
    [
        {"outcome": "bad"},
        {"category": "S1; DROP"},
        {"since": "yesterday"},
        {"reviewed": "maybe"},
        {"model": "x" * 201},
    ],
)
def test_malformed_filters_are_errors(query: dict[str, str]) -> None:
    with pytest.raises(FilterError):
        parse_filter(query)


def test_limit_and_cursor() -> None:
    assert parse_limit({}, default=50) == 50
    assert parse_limit({"limit": "7"}, default=50) == 7
    for bad in ("0", "-1", "501", "x"):
        with pytest.raises(FilterError):
            parse_limit({"limit": bad}, default=50)
    cursor = Cursor(NOW + timedelta(microseconds=123457), 987654321)
    assert Cursor.decode(cursor.encode()) == cursor
    assert parse_cursor({"cursor": cursor.encode()}) == cursor
    assert parse_cursor({}) is None
    for bad in ("!!!", "bm90LWEtY3Vyc29y", ""):
        if bad:
            with pytest.raises(FilterError):
                parse_cursor({"cursor": bad})


def test_confirm_takes_the_models_label() -> None:
    decision = decide_review(item(FULL, tags=("S1",)), action="confirm", note="ok")
    assert decision.answers == FULL and decision.categories == ("S1",) and decision.agrees
    with pytest.raises(ReviewError, match="use correct"):
        decide_review(item(FULL), action="confirm", answers={"request": "unharmful"})
    with pytest.raises(ReviewError, match="request answer"):
        decide_review(item({"request": None, "completion": None, "response": None}), action="confirm")


def test_correct_merges_the_given_answers_and_checks_the_label_is_complete() -> None:
    decision = decide_review(item(FULL, tags=("S1",)), action="correct", answers={"response": "unharmful"})
    assert decision.answers == {**FULL, "response": "unharmful"}
    assert decision.categories == ("S1",) and not decision.agrees
    retagged = decide_review(item(FULL, tags=("S1",)), action="correct", categories="S2, S10 S2")
    assert retagged.categories == ("S2", "S10") and not retagged.agrees
    prompt_only = item({"request": "harmful", "completion": None, "response": None}, has_response=False)
    assert decide_review(prompt_only, action="correct", answers={"request": "UNHARMFUL"}).answers[
        "request"
    ] == ("unharmful")
    with pytest.raises(ReviewError, match="no assistant response"):
        decide_review(prompt_only, action="correct", answers={"response": "harmful"})
    with pytest.raises(ReviewError, match="all three"):
        decide_review(item(FULL), action="correct", answers={"completion": None})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"action": "delete"},
        {"action": "correct", "answers": {"request": "ambiguous"}},
        {"action": "correct", "answers": {"severity": "high"}},
        {"action": "correct", "answers": ["harmful"]},
        {"action": "correct", "categories": ["<script>"]},
        {"action": "correct", "categories": 5},
        {"action": "confirm", "note": "x" * 4001},
        {"action": "confirm", "note": 3},
    ],
)
def test_invalid_reviews_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ReviewError):
        decide_review(item(FULL), **kwargs)


def test_roles() -> None:
    assert not Role.VIEWER.can_review
    assert Role.REVIEWER.can_review and Role.ADMIN.can_review


def test_passwords_are_salted_scrypt_and_verified_in_constant_time() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse", first)
    assert not verify_password("correct horsf", first)
    assert not verify_password("correct horse", None)
    assert not verify_password("correct horse", "md5$abc")
    with pytest.raises(ValueError, match="at least"):
        hash_password("short")


REASONING = [
    {"task": 0, "steps": ["preamble"]},
    {"task": 1, "steps": ["The user asks X.", "X is dangerous: harmful."]},
    {"task": 2, "steps": ["It complies."]},
    {"task": 3, "steps": ["The response explains Y.", "Y enables harm: harmful."]},
]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"request": "harmful", "response": "harmful"}, (1, 1)),
        ({"request": "unharmful", "response": "harmful"}, (3, 1)),
        ({"request": "unharmful", "response": "unharmful"}, (1, 1)),
        ({"request": None, "response": "harmful"}, None),  # unreadable: nothing decided
    ],
)
def test_the_deciding_step_is_the_one_a_block_reason_quotes(
    answers: dict[str, str | None], expected: tuple[int, int] | None
) -> None:
    assert deciding_step(REASONING, answers) == expected
    marked = [
        (t.task, s.number - 1) for t in reasoning_tasks(REASONING, answers) for s in t.steps if s.deciding
    ]
    assert marked == ([expected] if expected else [])


def test_charts_are_svg_with_escaped_labels_and_gaps() -> None:
    xs = [NOW + timedelta(minutes=i) for i in range(5)]
    svg = str(line_chart("Rate <b>", xs, [Series('p50 "ms"', [1.0, None, 3.0, 4.0, None])], unit="ms"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "Rate &lt;b&gt;" in svg and "<b>" not in svg and "p50 &#34;ms&#34;" in svg
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1  # the gap splits the line
    assert "09:30" in svg and "09:34" in svg
    bars = str(stacked_bar_chart("Cats", xs, [Series("S1", [1, 0, 2, 0, 0]), Series("S2", [1, 1, 0, 0, 0])]))
    assert bars.count("</title></rect>") == 4  # one bar segment per non-zero value
    assert "<title>S1: 2</title>" in bars


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (0.3, 0.5), (3, 5), (10, 10), (11, 20), (24, 25), (26, 50), (101, 200)]
)
def test_axis_tops_are_round(value: float, top: float) -> None:
    assert nice_max(value) == pytest.approx(top)
