"""Kafka verdict records → store rows (pure)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from streams.engines.base import Generation
from streams.event import ChatEvent
from streams.pipeline import ModerationPolicy, to_verdict
from streams.store.records import Reject, VerdictRow, decode_record, trace_id_from_headers

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class FakeRecord:
    """Stands in for aiokafka's ConsumerRecord (named as a fake; the integration tests use a real broker)."""

    def __init__(self, value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> None:
        self.topic = "moderation.archive"
        self.partition = 3
        self.offset = 41
        self.value = value
        self.headers = headers or []


def real_verdict(**extra: Any) -> dict[str, Any]:
    """A verdict made by the pipeline's own code from a GuardReasoner-shaped output."""
    event = ChatEvent("ev-1", "conv-1", "user-1", 1_700_000_000.0, "how do I pick a lock?", "I can't help.")
    output = (
        "# Task 1\n\n## Reasoning Step 1: The user asks how to pick a lock.\n"
        "## Reasoning Step 2: This can facilitate burglary.\n\n"
        "# Task 2\n\n## Reasoning Step 1: The assistant declines.\n\n"
        "# Task 3\n\n## Reasoning Step 1: Nothing harmful is said.\n\n---\n\n"
        "Answers: \nRequest: harmful\nCompletion: refusal\nResponse: unharmful\n"
    )
    verdict = to_verdict(
        event,
        Generation(text=output, model="GR-1B"),
        engine="recorded",
        policy=ModerationPolicy(),
        clock=time.time,
    )
    return {**verdict.to_dict(), **extra}


def decode(
    data: dict[str, Any] | bytes | None, headers: list[tuple[str, bytes]] | None = None, **kw: Any
) -> Any:
    value = data if isinstance(data, bytes | None) else orjson.dumps(data)
    return decode_record(FakeRecord(value, headers), **kw)


def test_an_archive_record_becomes_a_live_row_with_every_field() -> None:
    data = real_verdict(
        categories=[{"tag": "S2", "name": "Non-Violent Crimes"}, {"tag": "S2"}, {"tag": " "}],
        harms=["burglary"],
        request_text="how do I pick a lock?",
        response_text="I can't help.",
        cached=False,
    )
    row = decode(data, [("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode())])
    assert isinstance(row, VerdictRow)
    assert row.key == ("ev-1", "")
    assert row.source == "archive" and not row.flipped
    assert (row.answer_request, row.answer_completion, row.answer_response) == (
        "harmful",
        "refusal",
        "unharmful",
    )
    assert row.outcome == "harmful" and row.status == "ok" and row.has_response
    assert row.tags == ("S2",) and row.harms == ("burglary",)
    assert row.request_text == "how do I pick a lock?" and row.response_text == "I can't help."
    assert row.cached is False
    assert row.trace_id == TRACE
    assert row.event_time == datetime.fromtimestamp(1_700_000_000.0, UTC)
    assert row.record == data  # the whole record is kept
    assert (row.kafka_topic, row.kafka_partition, row.kafka_offset) == ("moderation.archive", 3, 41)


def test_optional_fields_missing_are_nulls_not_errors() -> None:
    record = real_verdict()
    for newer in ("cached", "request_text", "response_text"):  # written by newer workers only
        del record[newer]
    row = decode(record)
    assert isinstance(row, VerdictRow)
    assert row.tags == () and row.harms == ()
    assert row.request_text is None and row.cached is None and row.trace_id is None


@pytest.mark.parametrize(
    ("original", "flipped"),
    [
        (
            {
                "model": "GR-1B",
                "outcome": "harmful",
                "answers": {"request": "harmful", "completion": "refusal", "response": "unharmful"},
            },
            False,
        ),
        (
            {
                "model": "GR-1B",
                "outcome": "unharmful",
                "answers": {"request": "unharmful", "completion": "refusal", "response": "unharmful"},
            },
            True,
        ),
        (
            {
                "model": "GR-1B",
                "outcome": "harmful",
                "answers": {"request": "harmful", "completion": "compliance", "response": "unharmful"},
            },
            True,
        ),
        (None, False),  # no live verdict to compare with
    ],
)
def test_a_replay_record_keeps_its_run_and_marks_flips(
    original: dict[str, Any] | None, flipped: bool
) -> None:
    row = decode(real_verdict(run_id="run-7", original=original), replay=True)
    assert isinstance(row, VerdictRow)
    assert row.key == ("ev-1", "run-7") and row.source == "replay"
    assert row.flipped is flipped
    if original:
        assert row.original_model == "GR-1B" and row.original_outcome == original["outcome"]


def test_the_replay_run_header_stands_in_for_a_missing_run_id() -> None:
    row = decode(real_verdict(), [("guardstream-replay-run", b"run-h")], replay=True)
    assert isinstance(row, VerdictRow) and row.run_id == "run-h"


@pytest.mark.parametrize(
    ("value", "replay", "reason"),
    [
        (None, False, "tombstone"),
        (b"{not json", False, "not_json"),
        (b"[1, 2]", False, "not_an_object"),
        ({"outcome": "harmful", "moderated_at": 1, "event_timestamp": 1}, False, "missing_event_id"),
        ({"event_id": 7, "outcome": "harmful"}, False, "wrong_type_event_id"),
        (
            {"event_id": "", "outcome": "harmful", "moderated_at": 1, "event_timestamp": 1},
            False,
            "bad_event_id",
        ),
        ({"event_id": "x", "outcome": "harmful", "event_timestamp": 1}, False, "missing_moderated_at"),
        (
            {"event_id": "x", "outcome": "harmful", "moderated_at": 1e300, "event_timestamp": 1},
            False,
            "bad_moderated_at",
        ),
        (
            {"event_id": "x", "outcome": "harmful", "moderated_at": 1, "event_timestamp": 1},
            True,
            "replay_without_run_id",
        ),
    ],
)
def test_unreadable_records_become_rejects_with_a_reason(value: Any, replay: bool, reason: str) -> None:
    reject = decode(value, replay=replay)
    assert isinstance(reject, Reject)
    assert reject.reason == reason
    assert reject.value == (value if isinstance(value, bytes | None) else orjson.dumps(value))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
        (f"00-{TRACE.upper()}-00f067aa0ba902b7-01", TRACE),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),  # the invalid all-zero trace id
        ("garbage", None),
        ("", None),
    ],
)
def test_trace_id_from_traceparent(header: str, expected: str | None) -> None:
    assert trace_id_from_headers([("other", b"x"), ("traceparent", header.encode())]) == expected
