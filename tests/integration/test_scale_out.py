"""Scale-out: three workers of one consumer group sharing two remote engines (``openai:A,B``).

The engines are two FAKE vLLM servers (tests/fakes/openai_server.py) with a service time
and a concurrency limit: two real vLLM servers with the fixture model do not fit this
2-core machine beside three workers. Correctness only (every event gets a verdict, a
rebalance or a server outage loses nothing); the throughput ratio is measured by
``python -m loadtest scaleout``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from streams.config import Settings
from tests.integration.conftest import (
    FakeOpenAIServer,
    SettingsFactory,
    WorkerFactory,
    archive_ids,
    collect,
    make_events,
    send,
)

pytestmark = pytest.mark.integration


def _verdicts(settings: Settings, expected: int, timeout_s: float) -> list[dict[str, Any]]:
    """The archive once it holds ``expected`` distinct events (or the timeout passed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = collect(settings, settings.topics.archive, idle_s=1.0)
        if len(archive_ids(records)) >= expected or time.monotonic() > deadline:
            return records
        time.sleep(1.0)


def test_three_workers_two_engines_one_group_lose_nothing_on_a_rebalance(
    settings_factory: SettingsFactory,
    worker_factory: WorkerFactory,
    fake_openai: Callable[..., FakeOpenAIServer],
) -> None:
    a = fake_openai(delay=(0.02, 0.08), concurrency=8)
    b = fake_openai(delay=(0.02, 0.08), concurrency=8)
    settings = settings_factory(engine=f"openai:{a.url},{b.url}")
    settings = replace(settings, batch=replace(settings.batch, max_in_flight=16, max_unacked=64))
    workers = [worker_factory(settings) for _ in range(3)]
    events = make_events(600, prefix="scale")
    send(settings, events[:300])
    _verdicts(settings, 100, 60)
    workers[0].kill()  # a rebalance while events are in flight
    send(settings, events[300:])
    records = _verdicts(settings, len(events), 180)
    assert archive_ids(records) == {e.id for e in events}
    assert {r["value"]["outcome"] for r in records} <= {"harmful", "unharmful"}  # no engine_error
    served = [a.stats()["served"], b.stats()["served"]]
    assert min(served) > 0.3 * sum(served), served  # both engines shared the work
    assert max(a.stats()["max_in_flight"], b.stats()["max_in_flight"]) <= 8


def test_a_server_going_down_fails_over_to_the_other(
    settings_factory: SettingsFactory,
    worker_factory: WorkerFactory,
    fake_openai: Callable[..., FakeOpenAIServer],
) -> None:
    a = fake_openai(delay=(0.01, 0.03))
    b = fake_openai(delay=(0.01, 0.03))
    settings = settings_factory(engine=f"openai:{a.url},{b.url}")
    worker_factory(settings)
    worker_factory(settings)
    events = make_events(300, prefix="failover")
    send(settings, events[:100])
    _verdicts(settings, 100, 60)
    b.control(mode="down")
    before = a.stats()["served"]
    send(settings, events[100:])
    records = _verdicts(settings, len(events), 120)
    assert archive_ids(records) == {e.id for e in events}
    assert {r["value"]["outcome"] for r in records} <= {"harmful", "unharmful"}
    assert a.stats()["served"] - before >= 200  # everything after the outage went to A
