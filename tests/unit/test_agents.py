"""The Moderator without Kafka: publish before ack, acks in offset order, DLQ, failures.

The producer here is a stand-in for Kafka's send half (named as a fake: unit tests
run no broker). Its acknowledgements stay pending until the test resolves them, so
"acked only after the broker acknowledged" is observable, not assumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from streams import agents
from streams.agents import InputRecord, Moderator
from streams.config import KafkaConfig, Settings
from streams.engines.fake import FIXED_OUTPUT, FakeEngine
from streams.event import ChatEvent, encode_event


def _record(offset: int, value: bytes | None, partition: int = 0) -> InputRecord:
    message = SimpleNamespace(
        key=b"c",
        value=value,
        topic="chat.events",
        partition=partition,
        offset=offset,
        timestamp=1.0,
        headers=[],
        tp=("chat.events", partition),
        generation_id=None,
    )
    return InputRecord.from_faust(SimpleNamespace(message=message))


def _event(i: int, text: str = "hi") -> bytes:
    return encode_event(ChatEvent(f"e{i}", "c", "u", 1.0, text))


def _label(value: bytes) -> str:
    """A sent record in the log: the DLQ reason, or the verdict's event id."""
    data = orjson.loads(value)
    return str(data["error"]["reason"] if isinstance(data.get("error"), dict) else data["event_id"])


class FakeProducer:
    """Records sends; each send's acknowledgement is a future the test resolves (or fails)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.futures: list[asyncio.Future[None]] = []
        self.auto = False  # resolve acknowledgements at once
        self.refuse: type[BaseException] | None = None  # fail every send's acknowledgement

    async def send(
        self, topic: str, key: Any, value: Any, partition: Any, timestamp: Any, headers: Any
    ) -> Awaitable[Any]:
        self.log.append(f"send {topic} {_label(value)}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.refuse is not None:
            future.set_exception(self.refuse("refused"))
        elif self.auto:
            future.set_result(None)
        self.futures.append(future)
        return future

    def ack_all(self) -> None:
        for future in self.futures:
            if not future.done():
                future.set_result(None)


def _moderator(
    log: list[str], engine: FakeEngine | None = None, *, in_flight: int | None = None, **kafka: Any
) -> tuple[Moderator, FakeProducer, list[BaseException]]:
    fatal: list[BaseException] = []
    producer = FakeProducer(log)

    async def ack(handle: Any) -> None:
        log.append(f"ack {handle.message.offset}")

    async def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)

    settings = Settings()
    settings = replace(settings, kafka=replace(settings.kafka, **kafka)) if kafka else settings
    if in_flight is not None:
        settings = replace(settings, batch=replace(settings.batch, max_in_flight=in_flight))
    moderator = Moderator(
        settings=settings, engine=engine or FakeEngine(), producer=producer, ack=ack, on_fatal=on_fatal
    )
    return moderator, producer, fatal


async def _until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def test_inputs_are_acked_only_after_the_broker_acknowledged_their_outputs() -> None:
    log: list[str] = []
    moderator, producer, fatal = _moderator(log)
    label = {0: "e0", 1: "not_json"}  # offset -> what its output record is called in the log

    def check() -> None:
        """Every acked event's records were sent, and the broker acknowledged them all."""
        sends = [line.split()[-1] for line in log if line.startswith("send")]
        for line in log:
            if line.startswith("ack"):
                name = label[int(line.split()[1])]
                futures = [f for sent, f in zip(sends, producer.futures, strict=True) if sent == name]
                assert futures and all(f.done() for f in futures), (line, log)

    async def run() -> None:
        await moderator.admit([_record(0, _event(0)), _record(1, b"not json")])
        for _ in range(200):  # acknowledge one record at a time, checking in between
            await asyncio.sleep(0.02)
            check()
            pending = [f for f in producer.futures if not f.done()]
            if pending:
                pending[0].set_result(None)
            elif "ack 1" in log:
                break
        await moderator.drain(1)

    asyncio.run(run())
    assert fatal == []
    assert sorted(line for line in log if line.startswith("send")) == [
        "send moderation.archive e0",
        "send moderation.dlq not_json",
    ]
    assert [line for line in log if line.startswith("ack")] == ["ack 0", "ack 1"]


def test_a_later_event_finishing_first_is_acked_only_after_the_earlier_one() -> None:
    log: list[str] = []
    release = asyncio.Event()

    async def answer(prompt: str) -> str:
        if "slow" in prompt:
            await release.wait()
        return FIXED_OUTPUT

    moderator, producer, fatal = _moderator(log, FakeEngine(answer))
    producer.auto = True

    async def run() -> None:
        await moderator.admit([_record(0, _event(0, "slow")), _record(1, _event(1)), _record(2, _event(2))])
        await moderator.admit([_record(0, _event(3), partition=1)])  # another partition is independent
        await _until(lambda: "ack 0" in log)  # partition 1's offset 0
        await asyncio.sleep(0.2)
        assert "send moderation.archive e1" in log and "send moderation.archive e2" in log
        assert [line for line in log if line.startswith("ack")] == ["ack 0"]
        release.set()
        await _until(lambda: "ack 2" in log)
        await moderator.drain(1)

    asyncio.run(run())
    assert fatal == []
    acks = [line for line in log if line.startswith("ack")]
    assert acks == ["ack 0", "ack 0", "ack 1", "ack 2"]


def test_revoked_partitions_are_never_acked() -> None:
    log: list[str] = []
    release = asyncio.Event()

    async def answer(prompt: str) -> str:
        await release.wait()
        return FIXED_OUTPUT

    moderator, producer, fatal = _moderator(log, FakeEngine(answer))
    producer.auto = True

    async def run() -> None:
        await moderator.admit([_record(5, _event(5)), _record(6, _event(6))])
        moderator.revoke([("chat.events", 0)])
        release.set()
        await asyncio.sleep(0.2)
        await moderator.drain(1)

    asyncio.run(run())
    assert fatal == []
    assert not any(line.startswith("ack") for line in log)


def test_the_rest_of_a_batch_taken_before_a_rebalance_is_never_acked() -> None:
    """Offset 1 waits for the only slot while the partition is revoked and assigned again: neither
    it nor offset 2 (fetched before the rebalance, read again from the committed offset) may be
    acked in the new round, where an ack of 2 would let the commit pass offset 0 and 1."""
    log: list[str] = []
    release = asyncio.Event()

    async def answer(prompt: str) -> str:
        await release.wait()
        return FIXED_OUTPUT

    moderator, producer, fatal = _moderator(log, FakeEngine(answer), in_flight=1)
    producer.auto = True

    async def run() -> None:
        batch = [_record(0, _event(0)), _record(1, _event(1)), _record(2, _event(2))]
        admitting = asyncio.ensure_future(moderator.admit(batch))
        await asyncio.sleep(0.1)  # offset 0 holds the slot, offset 1 waits for it
        assert not admitting.done()
        moderator.revoke([("chat.events", 0)])
        moderator.assigned([("chat.events", 0)])  # the same partition, the next generation
        release.set()
        await asyncio.wait_for(admitting, 5)
        await asyncio.sleep(0.2)
        await moderator.drain(1)

    asyncio.run(run())
    assert fatal == []
    assert not any(line.startswith("ack") for line in log), log
    assert not any("e1" in line or "e2" in line for line in log), log  # not even moderated


def test_a_decoder_bug_dead_letters_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(raw: bytes | None, limits: object = None) -> ChatEvent:
        raise RecursionError("deep")

    monkeypatch.setattr(agents, "decode_event", explode)
    log: list[str] = []
    moderator, producer, _ = _moderator(log)
    producer.auto = True

    async def run() -> None:
        await moderator.admit([_record(7, b"{}")])
        await _until(lambda: "ack 7" in log)
        await moderator.drain(1)

    asyncio.run(run())
    assert log == ["send moderation.dlq undecodable", "ack 7"]


def test_a_record_the_broker_refuses_becomes_a_dead_letter_and_the_worker_goes_on() -> None:
    log: list[str] = []
    moderator, producer, fatal = _moderator(log)

    async def send(topic: str, key: Any, value: Any, *rest: Any) -> Awaitable[Any]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        log.append(f"send {topic} {_label(value)}")
        if topic == "moderation.archive":
            future.set_exception(MessageSizeTooLargeError("too large for the broker"))
        else:
            future.set_result(None)
        return future

    producer.send = send  # type: ignore[method-assign]

    async def run() -> None:
        await moderator.admit([_record(0, _event(0))])
        await _until(lambda: "ack 0" in log)
        await moderator.drain(1)

    asyncio.run(run())
    assert fatal == []
    assert log == ["send moderation.archive e0", "send moderation.dlq output_rejected", "ack 0"]


def test_a_refused_dead_letter_for_a_refused_record_stops_the_worker_at_once_without_acks() -> None:
    log: list[str] = []
    moderator, producer, fatal = _moderator(log, publish_timeout_s=60)
    producer.refuse = MessageSizeTooLargeError  # the DLQ topic refuses even the small replacement

    async def run() -> None:
        await moderator.admit([_record(0, _event(0))])
        await _until(lambda: bool(fatal), timeout_s=5)  # not after the 60 s publish timeout
        await moderator.drain(0.2)

    asyncio.run(run())
    assert log == ["send moderation.archive e0", "send moderation.dlq output_rejected"]
    assert "max.message.bytes" in str(fatal[0]) and "moderation.dlq" in str(fatal[0])


def test_a_broker_that_stays_unreachable_stops_the_worker_without_acks() -> None:
    log: list[str] = []
    moderator, producer, fatal = _moderator(log, publish_timeout_s=0.5)
    producer.refuse = KafkaConnectionError

    async def run() -> None:
        await moderator.admit([_record(0, _event(0))])
        await _until(lambda: bool(fatal), timeout_s=10)
        await moderator.drain(0.2)

    asyncio.run(run())
    assert not any(line.startswith("ack") for line in log)
    assert len(log) >= 2  # it retried before giving up
    assert "failed for 0.5s" in str(fatal[0])


def test_dead_letter_of_a_huge_record_keeps_a_prefix_size_and_hash() -> None:
    import base64
    import hashlib

    log: list[str] = []
    moderator, producer, _ = _moderator(log, max_record_bytes=100_000)
    sent: list[bytes] = []
    original = producer.send

    async def send(topic: str, key: Any, value: Any, *rest: Any) -> Awaitable[Any]:
        sent.append(value)
        return await original(topic, key, value, *rest)

    producer.send = send  # type: ignore[method-assign]
    producer.auto = True
    huge = b'{"id": "' + b"x" * 3_000_000 + b'"}'

    async def run() -> None:
        await moderator.admit([_record(0, huge)])
        await _until(lambda: "ack 0" in log)
        await moderator.drain(1)

    asyncio.run(run())
    (value,) = sent
    assert len(value) < 100_000
    record = orjson.loads(value)
    assert record["error"]["reason"] == "oversize"
    assert record["value"] == {
        "size": len(huge),
        "sha256": hashlib.sha256(huge).hexdigest(),
        "truncated": True,
    }
    assert huge.startswith(base64.b64decode(record["value_b64"]))


def test_settings_that_cannot_fit_a_dead_letter_are_refused() -> None:
    from streams.errors import ConfigError

    settings = Settings(kafka=KafkaConfig(max_record_bytes=20_000))
    with pytest.raises(ConfigError, match="DLQ_MAX_VALUE_BYTES"):
        settings.check()
    with pytest.raises(ConfigError, match="PRODUCER_MAX_REQUEST_BYTES"):
        Settings(kafka=KafkaConfig(max_record_bytes=2_000_000)).check()
