"""Events/s of 1 worker vs 3 workers (one consumer group) sharing two remote engines, same broker, same run.

The engines are two FAKE vLLM servers (``tests/fakes/openai_server.py``: real HTTP, a
service time, at most ``concurrency`` completions at a time), reached as
``openai:A,B`` (the worker balances over both). Two settings:

- ``headroom``: the servers can take far more than one worker sends (each worker keeps
  at most ``max_in_flight`` events in flight, so one worker moves about
  ``max_in_flight / service time`` events/s): throughput should grow with workers.
- ``engine_bound``: the servers' slots are the limit: more workers should not help.

Each measurement starts its workers, waits until every one has partitions, then sends
``events`` and times until the last verdict is in the archive. Verdicts mean nothing.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from loadtest.common import broker, event_payloads, machine, observe, produce, run_settings
from streams.app import READY_LOG
from streams.broker import free_port, wait_for_port
from streams.config import BatchConfig
from streams.process import WorkerProcess
from streams.topics import ensure_topics

__all__ = ["run_scaleout"]

_ROOT = Path(__file__).resolve().parents[1]
_SERVICE_S = (0.08, 0.12)


@contextmanager
def _fake_server(log: Path, concurrency: int) -> Iterator[str]:
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port),
                "--delay-min", str(_SERVICE_S[0]), "--delay-max", str(_SERVICE_S[1]),
                "--concurrency", str(concurrency),
            ],
            stdout=out, stderr=subprocess.STDOUT, cwd=_ROOT,
        )  # fmt: skip
    try:
        wait_for_port("127.0.0.1", port, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def _measure(bootstrap: str, engine: str, workers: int, events: int, in_flight: int, tmp: Path) -> float:
    settings = run_settings(bootstrap, engine, batch=BatchConfig(max_in_flight=in_flight))
    settings = replace(settings, kafka=replace(settings.kafka, partitions=6))
    asyncio.run(ensure_topics(settings.kafka, settings.topics))
    with ExitStack() as stack:
        procs = []
        for i in range(workers):
            log = tmp / f"worker-{workers}-{i}-{time.monotonic_ns()}.log"
            procs.append(stack.enter_context(WorkerProcess(settings, log_path=log)))
        for proc in procs:
            proc.wait_for_log(READY_LOG, 120)
        time.sleep(8)  # let the group settle (members that joined late trigger one more rebalance)
        payloads = event_payloads(events, run=f"scale{workers}")

        async def go() -> tuple[float, list[float]]:
            watcher = asyncio.create_task(
                observe(settings.kafka, settings.topics.archive, events, timeout_s=600)
            )
            started = await produce(settings.kafka, settings.topics.events, payloads)
            return started, await watcher

        started, times = asyncio.run(go())
    if len(times) < events:
        raise RuntimeError(f"only {len(times)} of {events} verdicts arrived")
    return events / (max(times) - started)


def run_scaleout(events: int = 1200, *, in_flight: int = 16) -> dict[str, Any]:
    result: dict[str, Any] = {
        **machine(),
        "engine": "2 FAKE vLLM servers (tests/fakes/openai_server.py), openai:A,B",
        "service_time_s": list(_SERVICE_S),
        "events": events,
        "worker_max_in_flight": in_flight,
    }
    cases = {"headroom": 64, "engine_bound": 4}  # completions each server runs at once
    with broker() as b, tempfile.TemporaryDirectory(prefix="guardstream-scaleout-") as tmp_name:
        tmp = Path(tmp_name)
        for case, slots in cases.items():
            with (
                _fake_server(tmp / f"{case}-a.log", slots) as a,
                _fake_server(tmp / f"{case}-b.log", slots) as c,
            ):
                capacity = 2 * slots / (sum(_SERVICE_S) / 2)
                one = _measure(b.bootstrap, f"openai:{a},{c}", 1, events, in_flight, tmp)
                three = _measure(b.bootstrap, f"openai:{a},{c}", 3, events, in_flight, tmp)
                result[case] = {
                    "server_slots_each": slots,
                    "engine_capacity_events_per_s": round(capacity, 1),
                    "one_worker_bound_events_per_s": round(in_flight / (sum(_SERVICE_S) / 2), 1),
                    "workers_1_events_per_s": round(one, 1),
                    "workers_3_events_per_s": round(three, 1),
                    "ratio_3_to_1": round(three / one, 2),
                }
    return result
