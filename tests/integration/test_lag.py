"""The consumer-lag gauges against a partition whose end the test knows (embedded broker)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from streams.broker import free_port
from streams.config import TelemetryConfig

from .conftest import SettingsFactory, WorkerFactory, collect, make_events, send

pytestmark = pytest.mark.integration


def _gauge(port: int, name: str, topic: str) -> dict[int, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    pattern = rf'^{name}{{partition="(\d+)",topic="{re.escape(topic)}"}} (\S+)$'
    return {int(p): float(v) for p, v in re.findall(pattern, text, flags=re.M)}


def test_lag_is_exact_while_paused_and_drops_to_zero_after(
    settings_factory: SettingsFactory, worker_factory: WorkerFactory, fake_openai: Callable[..., Any]
) -> None:
    server = fake_openai()
    port = free_port()
    base = settings_factory(engine=f"openai:{server.url}")
    settings = settings_factory(  # a one-partition events topic, fast commits and lag updates
        engine=base.engine.spec,
        kafka=replace(base.kafka, partitions=1, commit_interval_s=0.5),
        topics=replace(base.topics, events=base.topics.events + ".one"),
        telemetry=TelemetryConfig(http_port=port, lag_interval_s=0.5),
    )
    worker_factory(settings)
    warm = make_events(5, prefix="warm")
    send(settings, warm)
    collect(settings, settings.topics.archive, count=5)
    server.control(mode="down")  # nothing gets done: every event sent now is lag
    send(settings, make_events(1, prefix="trip"))  # the failure that closes the gate
    time.sleep(3)
    send(
        settings, make_events(40, prefix="held")
    )  # sent in batches: the embedded broker's ListOffsets is off
    deadline = time.monotonic() + 30
    lag: dict[int, float] = {}
    while time.monotonic() < deadline:
        lag = _gauge(port, "guardstream_consumer_lag", settings.topics.events)
        if lag.get(0) == 41:
            break
        time.sleep(0.5)
    assert lag == {0: 41.0}  # 5 + 1 + 40 records; 5 committed
    assert _gauge(port, "guardstream_consumer_highwater", settings.topics.events) == {0: 46.0}
    assert _gauge(port, "guardstream_consumer_committed_offset", settings.topics.events) == {0: 5.0}
    server.control(mode="up")
    collect(settings, settings.topics.archive, count=46, timeout_s=120)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and lag.get(0) != 0:
        lag = _gauge(port, "guardstream_consumer_lag", settings.topics.events)
        time.sleep(0.5)
    assert lag == {0: 0.0}
