"""Profile the worker under load: ``python -m loadtest profile --events N --out FILE.svg``.

Runs the throughput benchmark's pipeline side (``fake:instant`` engine, the service's
default batching) and samples the worker process with py-spy for the whole run,
writing a flame graph (SVG) and returning the top functions by own time.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from loadtest.common import broker, event_payloads, machine, observe, produce, run_settings, started_worker

__all__ = ["run"]


def _shares(raw: Path, n: int = 25) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(own time, inclusive time) shares of the hottest functions in a py-spy ``raw``
    (collapsed stacks) file; a function's line number is dropped so its samples add up."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f.rsplit(":", 1)[0] + ")" if ":" in f else f for f in stack.split(";")]
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
        total += int(count)

    def top(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(frame, round(count / max(1, total), 4)) for frame, count in counter.most_common(n)]

    return top(own), top(inclusive)


def run(events: int, out: Path, rate: int = 200) -> dict[str, Any]:
    payloads = event_payloads(events, run=uuid.uuid4().hex[:6])
    with broker() as b, tempfile.TemporaryDirectory() as tmp:
        settings = run_settings(b.bootstrap, "fake:instant")
        with started_worker(settings, Path(tmp) / "worker.log") as worker:
            raw = Path(tmp) / "stacks.txt"
            common = ["py-spy", "record", "--pid", str(worker.pid), "--rate", str(rate), "--nonblocking"]
            flame, stacks = (
                subprocess.Popen(
                    [*common, "--format", fmt, "--output", str(path)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for fmt, path in (("flamegraph", out), ("raw", raw))
            )
            time.sleep(1.0)
            watcher = observe(b.bootstrap, settings.topics.archive, events, timeout_s=600)

            async def timed() -> tuple[float, list[float]]:
                task = asyncio.create_task(watcher)
                started = await produce(b.bootstrap, settings.topics.events, payloads)
                return started, await task

            started, times = asyncio.run(timed())
            for proc in (flame, stacks):
                proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
                proc.wait(60)
            own, inclusive = _shares(raw, 40)
    return {
        "events": events,
        "pipeline_eps": round(len(times) / (max(times) - started), 1),
        "flamegraph": str(out),
        "top_own_time": own,
        "top_inclusive_time": inclusive,
        **machine(),
    }
