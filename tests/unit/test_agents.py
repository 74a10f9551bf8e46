"""BatchModerator without Kafka: publish before ack, DLQ on odd input, a publish failure acks nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams import agents
from streams.agents import BatchModerator, InputRecord
from streams.config import Settings
from streams.engines.fake import FakeEngine
from streams.event import ChatEvent, encode_event


def _record(offset: int, value: bytes) -> InputRecord:
    message = SimpleNamespace(
        key=b"c", value=value, topic="chat.events", partition=0, offset=offset, timestamp=1.0, headers=[]
    )
    return InputRecord(SimpleNamespace(message=message))


class RecordingProducer:
    """A stand-in for the Kafka producer's send half (named as a fake: no broker in unit tests)."""

    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log = log
        self.fail = fail

    async def send(
        self, topic: str, key: Any, value: Any, partition: Any, timestamp: Any, headers: Any
    ) -> Awaitable[Any]:
        if self.fail:
            raise ConnectionError("broker gone")
        self.log.append(f"send {topic} {orjson.loads(value).get('event_id', 'dlq')}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def _moderator(log: list[str], *, fail: bool = False) -> tuple[BatchModerator, list[BaseException]]:
    fatal: list[BaseException] = []

    async def ack(handle: Any) -> None:
        log.append(f"ack {handle.message.offset}")

    async def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)

    moderator = BatchModerator(
        settings=Settings(),
        engine=FakeEngine(),
        publisher=agents.Publisher(RecordingProducer(log, fail)),
        ack=ack,
        on_fatal=on_fatal,
    )
    return moderator, fatal


def test_outputs_are_published_before_inputs_are_acked() -> None:
    log: list[str] = []
    moderator, fatal = _moderator(log)
    batch = [_record(0, encode_event(ChatEvent("e0", "c", "u", 1.0, "hi"))), _record(1, b"not json")]

    async def run() -> None:
        await moderator.submit(batch)
        await moderator.drain(5)

    asyncio.run(run())
    assert fatal == []
    assert log == ["send moderation.dlq dlq", "send moderation.archive e0", "ack 0", "ack 1"]


def test_a_decoder_bug_dead_letters_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(raw: bytes | None, limits: object = None) -> ChatEvent:
        raise RecursionError("deep")

    monkeypatch.setattr(agents, "decode_event", explode)
    moderator, _ = _moderator([])
    events, dead = moderator.decode([_record(7, b"{}")])
    assert events == []
    (record,) = dead
    assert orjson.loads(record.value)["error"] == {"reason": "undecodable", "message": "RecursionError: deep"}


def test_publish_failure_acks_nothing_and_stops_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agents, "_PUBLISH_ATTEMPTS", 2)
    log: list[str] = []
    moderator, fatal = _moderator(log, fail=True)

    async def run() -> None:
        await moderator.submit([_record(0, encode_event(ChatEvent("e0", "c", "u", 1.0, "hi")))])
        await moderator.drain(10)

    asyncio.run(run())
    assert not any(line.startswith("ack") for line in log)
    assert len(fatal) == 1 and "publishing 1 record(s) failed" in str(fatal[0])
