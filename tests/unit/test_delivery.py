"""Offset tracking and record fitting: the parts of at-least-once that need no broker."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from streams.delivery import OffsetTracker
from streams.sinks import fit_json


def test_tickets_are_released_in_offset_order_per_partition() -> None:
    tracker = OffsetTracker(max_pending=100)
    a = [tracker.track("p0", offset, f"h{offset}") for offset in range(4)]
    b = tracker.track("p1", 10, "b10")
    assert tracker.complete([a[2], a[3], b]) == [b]  # p0 waits for offsets 0 and 1
    assert tracker.complete([a[1]]) == []
    assert [t.offset for t in tracker.complete([a[0]])] == [0, 1, 2, 3]
    assert tracker.pending == 0


def test_revoked_tickets_never_come_back() -> None:
    tracker = OffsetTracker(max_pending=100)
    first = tracker.track("p0", 0, None)
    second = tracker.track("p0", 1, None)
    assert tracker.revoke(["p0"]) == [first, second]
    assert tracker.complete([second, first]) == []
    again = tracker.track("p0", 0, None)  # re-assigned later: a fresh start
    assert tracker.complete([again]) == [again]


def test_retain_drops_partitions_outside_the_assignment() -> None:
    tracker = OffsetTracker(max_pending=100)
    kept, lost = tracker.track("p0", 0, None), tracker.track("p1", 0, None)
    assert tracker.retain(["p0"]) == [lost]
    assert tracker.complete([kept, lost]) == [kept]


def test_the_pending_bound_makes_the_consumer_wait() -> None:
    async def run() -> bool:
        tracker = OffsetTracker(max_pending=2)
        head = tracker.track("p0", 0, None)
        tracker.track("p0", 1, None)
        waiter = asyncio.create_task(tracker.wait_for_room())
        await asyncio.sleep(0.05)
        blocked = not waiter.done()
        tracker.complete([head])
        await asyncio.wait_for(waiter, 1)
        return blocked

    assert asyncio.run(run())


@pytest.mark.parametrize("limit", [2_000, 50_000, 400_000])
def test_oversize_records_are_shrunk_and_say_what_was_cut(limit: int) -> None:
    record = {
        "event_id": "e1",
        "raw": "loop " * 100_000,
        "reasoning": [{"task": i, "steps": ["step"] * 50} for i in range(500)],
        "request_text": "\u0001" * 50_000,  # six bytes each once JSON-escaped
    }
    data = fit_json(record, limit)
    assert len(data) <= limit
    shrunk = orjson.loads(data)
    assert shrunk["event_id"] == "e1"
    assert shrunk["truncated"]
    assert set(shrunk["truncated"]) <= {"/raw", "/reasoning", "/request_text", "/truncated"}


def test_records_that_fit_are_left_alone() -> None:
    record = {"event_id": "e1", "raw": "short"}
    assert fit_json(record, 1000) == orjson.dumps(record)
