"""SIEM findings and privacy through a real worker: recorded benchmark outputs, the embedded broker.

The chats are HarmBench response samples; a share of them gets a generated canary
planted in the chat text, and the recorded model output for that chat is
rewritten so that its reasoning quotes the canary (in the ways a model quotes
users: verbatim, in quotes, another case, full-width...). The worker sees a
model that repeats the user's words, as GuardReasoner does.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.client import read_topic
from streams.config import PrivacyConfig, Settings
from streams.engines.recorded import RECORDING_FILE, load_recordings
from streams.eval import load_benchmark
from streams.event import ChatEvent, encode_event
from streams.prompt import build_prompt
from streams.sinks import validate
from streams.sinks.findings import UNCLASSIFIED
from tests.canaries import Published, leaks, make_canary, plant, quoted_forms
from tests.conftest import SiemValidator

from .conftest import SettingsFactory, WorkerFactory

pytestmark = pytest.mark.integration

_ANSWER_LINE = ("#", "request:", "completion:", "response:", "answers", "---")


@dataclass
class Planted:
    events: list[ChatEvent]
    canaries: dict[str, str]  # event id -> canary planted in its chat
    trace_ids: dict[str, str]  # event id -> trace id sent in its traceparent


def _quote_in_reasoning(output: str, canary: str, rng: random.Random) -> str:
    """``output`` with every reasoning line quoting ``canary`` in some form, and one line
    saying the request involves it (so the harm phrases quote it too)."""
    forms = quoted_forms(canary, rng)
    lines = output.split("\n")
    prose = [
        i
        for i, line in enumerate(lines)
        if line.strip() and not line.strip().lower().startswith(_ANSWER_LINE)
    ]
    for i in prose:
        lines[i] = plant(lines[i], rng.choice(forms), rng)
    if prose:
        lines[prose[0]] += f" The request involves {rng.choice(forms)} and more."
    return "\n".join(lines)


def _recordings_with_canaries(
    shared: Path, folder: Path, prefix: str, share: float, limit: int | None
) -> Planted:
    bench = load_benchmark(shared / "benchmark" / "0_5_harmbench_response.json")
    outputs = load_recordings(shared / "predictions" / "3B" / "HarmBenchResponse").outputs
    rng = random.Random(f"{prefix}-20261128")
    planted = Planted([], {}, {})
    rows = []
    for sample in bench.samples[:limit]:
        event_id = f"{prefix}-{sample.index}"
        request, response, output = sample.request, sample.response, outputs[sample.prompt]
        if rng.random() < share:
            canary = make_canary(rng)
            if response is None or rng.random() < 0.5:
                request = plant(request, canary, rng)
            else:
                response = plant(response, canary, rng)
            output = _quote_in_reasoning(output, canary, rng)
            planted.canaries[event_id] = canary
        rows.append(orjson.dumps({"prompt": build_prompt(request, response), "label": "", "predict": output}))
        planted.events.append(
            ChatEvent(
                event_id,
                f"conv-{sample.index % 13}",
                f"user-{sample.index % 7}",
                time.time(),
                request,
                response,
            )
        )
        planted.trace_ids[event_id] = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORDING_FILE).write_bytes(b"\n".join(rows) + b"\n")
    return planted


def _send(settings: Settings, planted: Planted) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(
                    settings.topics.events,
                    encode_event(event),
                    key=event.conversation_id.encode(),
                    headers=[
                        ("traceparent", f"00-{planted.trace_ids[event.id]}-00f067aa0ba902b7-01".encode())
                    ],
                )
                for event in planted.events
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


@dataclass
class Raw:
    value: bytes
    key: bytes | None
    headers: dict[str, bytes]

    @property
    def json(self) -> Any:
        return orjson.loads(self.value)

    @property
    def text(self) -> str:
        """Everything the record carries, as text (what a SIEM receives)."""
        parts = [self.value, self.key or b"", *(k.encode() + b"=" + v for k, v in self.headers.items())]
        return b"\n".join(parts).decode("utf-8", "replace")


def _read(settings: Settings, topic: str, *, count: int | None = None, idle_s: float = 3.0) -> list[Raw]:
    async def run() -> list[Raw]:
        out = []
        async for record in read_topic(
            settings.kafka.bootstrap, topic, max_records=count, idle_timeout_s=None if count else idle_s
        ):
            out.append(Raw(record.value, record.key, dict(record.headers)))
        return out

    return asyncio.run(asyncio.wait_for(run(), 120))


def test_findings_for_recorded_outputs_through_a_worker_with_privacy_defaults(
    shared: Path,
    settings_factory: SettingsFactory,
    worker_factory: WorkerFactory,
    siem_validate: SiemValidator,
    tmp_path: Path,
) -> None:
    planted = _recordings_with_canaries(shared, tmp_path / "recorded", "hbf", share=0.25, limit=None)
    settings = settings_factory(engine=f"recorded:{tmp_path / 'recorded'}")
    assert settings.findings.formats == "ecs,ocsf" and settings.privacy.include_text is False  # the defaults
    worker_factory(settings)
    _send(settings, planted)

    archive = {
        r.json["event_id"]: r for r in _read(settings, settings.topics.archive, count=len(planted.events))
    }
    assert set(archive) == {e.id for e in planted.events}
    sent = {e.id: e for e in planted.events}
    for event_id, record in archive.items():
        validate("archive", record.json)
        assert record.json["request_text"] == sent[event_id].request  # the archive is the full record
        assert record.json["response_text"] == sent[event_id].response
    harmful = {i for i, r in archive.items() if r.json["outcome"] == "harmful"}
    assert 300 < len(harmful) < len(archive)
    assert len(harmful & set(planted.canaries)) > 50  # many canaries sit in harmful chats
    for event_id in harmful:
        verdict = archive[event_id].json
        assert verdict["severity"] is not None and isinstance(verdict["categories"], list)
    tagged = sum(1 for i in harmful if archive[i].json["categories"])
    assert tagged > 0.7 * len(harmful)  # most harmful verdicts get a taxonomy tag

    findings = {
        fmt: _read(settings, topic, count=len(harmful))
        for fmt, topic in (("ecs", settings.topics.findings_ecs), ("ocsf", settings.topics.findings_ocsf))
    }
    for fmt, records in findings.items():
        siem_validate(fmt, [r.value for r in records])
        uids = Counter(
            r.json["event"]["id"] if fmt == "ecs" else r.json["finding_info"]["uid"] for r in records
        )
        assert set(uids) == harmful and set(uids.values()) == {1}  # exactly one per harmful verdict
        for record in records:
            event_id = record.headers["guardstream-event-id"].decode()
            trace_id = planted.trace_ids[event_id]
            assert record.headers["traceparent"].split(b"-")[1].decode() == trace_id
            assert record.key == sent[event_id].conversation_id.encode()
            categories = archive[event_id].json["categories"]
            labels = [f"{c['tag']} {c['name']}" for c in categories] or [UNCLASSIFIED]
            if fmt == "ecs":
                assert record.json["trace"]["id"] == trace_id
                assert record.json["tags"] == ([c["tag"] for c in categories] or [UNCLASSIFIED])
            else:
                assert record.json["finding_info"]["types"] == labels
                assert record.json["severity"].lower() == archive[event_id].json["severity"]

    blocks = _read(settings, settings.topics.block, count=len(harmful))
    alerts = _read(settings, settings.topics.alerts, count=len(harmful))
    for record in blocks:
        validate("block", record.json)
    for record in alerts:
        validate("alert", record.json)
    exposed = [*blocks, *alerts, *findings["ecs"], *findings["ocsf"]]
    leaked = []
    for record in exposed:  # every canary against every record (a quote may land in another verdict)
        shown = Published(record.text)
        leaked.extend((c, record.text[:200]) for c in planted.canaries.values() if shown.shows(c))
    assert not leaked, leaked[:3]
    in_archive = [
        event_id for event_id, canary in planted.canaries.items() if leaks(canary, archive[event_id].text)
    ]
    assert sorted(in_archive) == sorted(planted.canaries)
    # nothing more arrives on the findings topics afterwards
    assert len(_read(settings, settings.topics.findings_ocsf, idle_s=2)) == len(harmful)


def test_findings_with_include_text_carry_the_chat(
    shared: Path,
    settings_factory: SettingsFactory,
    worker_factory: WorkerFactory,
    siem_validate: SiemValidator,
    tmp_path: Path,
) -> None:
    planted = _recordings_with_canaries(shared, tmp_path / "recorded", "hbt", share=0.5, limit=80)
    settings = settings_factory(
        engine=f"recorded:{tmp_path / 'recorded'}", privacy=PrivacyConfig(include_text=True)
    )
    worker_factory(settings)
    _send(settings, planted)

    archive = {
        r.json["event_id"]: r.json
        for r in _read(settings, settings.topics.archive, count=len(planted.events))
    }
    harmful = {i for i, v in archive.items() if v["outcome"] == "harmful"}
    assert harmful
    sent = {e.id: e for e in planted.events}
    ecs = _read(settings, settings.topics.findings_ecs, count=len(harmful))
    ocsf = _read(settings, settings.topics.findings_ocsf, count=len(harmful))
    siem_validate("ecs", [r.value for r in ecs])
    siem_validate("ocsf", [r.value for r in ocsf])
    for record in ecs:
        event = sent[record.json["event"]["id"]]
        messages = record.json["gen_ai"]["input"]["messages"]
        assert messages[0]["parts"][0]["content"] == event.request
        assert record.json["gen_ai"]["output"]["messages"][0]["parts"][0]["content"]
    for record in ocsf:
        event = sent[record.json["finding_info"]["uid"]]
        assert record.json["evidences"][0]["data"]["text"] == event.request
        assert record.json["unmapped"]["reasoning"]
    alerts = _read(settings, settings.topics.alerts, count=len(harmful))
    for record in alerts:
        validate("alert", record.json)
        assert record.json["request_text"] == sent[record.json["event_id"]].request
    shown = [i for i in harmful & set(planted.canaries)]
    assert shown and all(
        any(leaks(planted.canaries[i], r.text) for r in alerts if r.json["event_id"] == i) for i in shown
    )
