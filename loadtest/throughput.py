"""Events/s of one worker with an instant engine, against raw aiokafka pass-through, same broker, same run.

(a) raw: a separate process consumes the events topic and, per event, produces the same
    I/O the service does: one record of the size of the service's archive record (every
    ``fake:instant`` verdict is unharmful, so the service publishes exactly one archive
    record per event), committing as the worker does;
(b) pipeline: ``guardstream worker`` with ``fake:instant`` (no model) and the service's
    default batching settings (reported in the JSON).
Both run as child processes fed by the same producer and timed by the same
observer: first event sent → last output record seen.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from loadtest.common import broker, event_payloads, machine, observe, produce, run_settings, started_worker
from streams.config import BatchConfig
from streams.topics import ensure_topics

__all__ = ["passthrough", "run"]


async def passthrough(
    bootstrap: str, source: str, target: str, group: str, n: int, output_bytes: int = 0
) -> None:
    """The baseline: consume → produce one record of ``output_bytes`` per event (the input's own
    bytes when 0) → commit, as a worker would, for ``n`` records."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await consumer.start()
    await producer.start()
    print("passthrough ready", flush=True)
    done = 0
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            futures = []
            for records in batches.values():
                for record in records:
                    value = record.value
                    if output_bytes:  # the service's output size: the input, repeated and cut
                        value = (value * (output_bytes // max(1, len(value)) + 1))[:output_bytes]
                    futures.append(await producer.send(target, value, key=record.key))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
                done += len(futures)
    finally:
        await producer.stop()
        await consumer.stop()


def archive_record_bytes(payload: bytes) -> int:
    """The size of the archive record the service publishes for ``payload`` with ``fake:instant``
    and the default settings (the same moderation code, early exit included)."""
    from streams.config import Settings
    from streams.engines.fake import FakeEngine
    from streams.event import decode_event
    from streams.pipeline import ModerationPolicy, moderate_one
    from streams.sinks import Outputs

    settings = Settings()
    verdict = asyncio.run(
        moderate_one(decode_event(payload), FakeEngine(), ModerationPolicy.from_settings(settings))
    )
    outputs = Outputs(
        settings.topics, max_record_bytes=settings.kafka.max_record_bytes, dlq_max_value_bytes=1024
    )
    (record,) = outputs.for_verdict(verdict)
    return len(record.value)


def _raw(bootstrap: str, payloads: list[tuple[bytes, bytes]], log: Path, output_bytes: int) -> float:
    run = uuid.uuid4().hex[:8]
    source, target = f"raw-in-{run}", f"raw-out-{run}"
    from streams.config import KafkaConfig, TopicNames

    asyncio.run(
        ensure_topics(
            KafkaConfig(bootstrap=bootstrap, partitions=4),
            TopicNames(
                events=source,
                block=target,
                alerts=target,
                archive=target,
                dlq=target,
                findings_ecs=target,
                findings_ocsf=target,
            ),
        )
    )
    import subprocess

    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import asyncio,sys; from loadtest.throughput import passthrough; "
                "asyncio.run(passthrough(*sys.argv[1:5], int(sys.argv[5]), int(sys.argv[6])))",
                bootstrap,
                source,
                target,
                f"raw-{run}",
                str(len(payloads)),
                str(output_bytes),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "ready" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(4)  # the consumer group join (Tansu: session_timeout/2)
        return asyncio.run(_timed(bootstrap, source, target, payloads))
    finally:
        proc.wait(60)


async def _timed(bootstrap: str, source: str, target: str, payloads: list[tuple[bytes, bytes]]) -> float:
    watcher = asyncio.create_task(observe(bootstrap, target, len(payloads), timeout_s=300))
    started = await produce(bootstrap, source, payloads)
    times = await watcher
    if len(times) < len(payloads):
        raise RuntimeError(f"only {len(times)} of {len(payloads)} outputs arrived")
    return len(payloads) / (max(times) - started)


class _OtlpSink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports on loopback and discards them (a stand-in collector)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access logs
        return None


def _pipeline(
    bootstrap: str, payloads: list[tuple[bytes, bytes]], log: Path, env: dict[str, str], batch: BatchConfig
) -> float:
    settings = run_settings(bootstrap, "fake:instant", batch=batch)
    with started_worker(settings, log, env=env):
        return asyncio.run(_timed(bootstrap, settings.topics.events, settings.topics.archive, payloads))


def _floor(
    bootstrap: str, payloads: list[tuple[bytes, bytes]], log: Path, output_bytes: int, batch: BatchConfig
) -> float:
    """Events/s of the worker's Faust app and intake with no moderation (:mod:`loadtest.floor`)."""
    from loadtest.floor import READY

    settings = run_settings(bootstrap, "fake:instant", batch=batch)
    with started_worker(settings, log, module="loadtest.floor", args=(str(output_bytes),), ready=READY):
        return asyncio.run(_timed(bootstrap, settings.topics.events, settings.topics.archive, payloads))


def run(events: int, *, trace: bool = False, batch: BatchConfig | None = None) -> dict[str, Any]:
    """``trace``: also run the pipeline with tracing exported over OTLP/HTTP to a loopback sink.
    ``batch``: the worker's batching (default: the service's defaults)."""
    batch = batch or BatchConfig()
    payloads = event_payloads(events, run=uuid.uuid4().hex[:6])
    output_bytes = archive_record_bytes(payloads[0][1])
    traced: dict[str, Any] = {}
    with broker() as b, tempfile.TemporaryDirectory() as tmp:
        raw_eps = _raw(b.bootstrap, payloads, Path(tmp) / "raw.log", output_bytes)
        floor_eps = _floor(b.bootstrap, payloads, Path(tmp) / "floor.log", output_bytes, batch)
        pipeline_eps = _pipeline(b.bootstrap, payloads, Path(tmp) / "worker.log", {}, batch)
        if trace:
            sink = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpSink)
            threading.Thread(target=sink.serve_forever, daemon=True).start()
            env = {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}",
            }
            try:
                eps = _pipeline(b.bootstrap, payloads, Path(tmp) / "traced.log", env, batch)
            finally:
                sink.shutdown()
            traced = {"traced_eps": round(eps, 1), "tracing_cost": round(1 - eps / pipeline_eps, 3)}
    return {
        "raw_eps": round(raw_eps, 1),
        "pipeline_eps": round(pipeline_eps, 1),
        "ratio": round(pipeline_eps / raw_eps, 3),
        # the worker's Faust app and intake publishing the same records, moderating nothing
        "faust_floor_eps": round(floor_eps, 1),
        "floor_ratio": round(floor_eps / raw_eps, 3),
        "pipeline_vs_floor": round(pipeline_eps / floor_eps, 3),
        "events": events,
        **traced,
        "output_records_per_event": 1,
        "output_record_bytes": output_bytes,
        "batch": {
            "max_in_flight": batch.max_in_flight,
            "max_unacked": batch.max_unacked,
        },
        **machine(),
    }
