"""What SIEM findings and privacy add to the work per harmful verdict (no broker: records only).

Harmful verdicts are made from recorded real outputs (``to_verdict`` with the
worker's categoriser). For each, the output records are built (``records_for``,
JSON encoding and size fitting included) in four modes, all in the same run:

* ``baseline``: findings off, ``include_text`` (no redaction: what a verdict cost
  before findings and privacy);
* ``privacy``: findings off, privacy default (block/alert with digests and redaction);
* ``findings``: ECS + OCSF on, privacy default (the service's default);
* ``findings_text``: ECS + OCSF on, ``include_text``.

Each verdict is timed ``repeat`` times per mode (modes interleaved) and its
fastest time kept, which removes most of the noise of a shared machine; the
report gives mean / p50 / p99 µs per harmful verdict over those, and each
mode's added µs and ratio against the baseline.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from loadtest.common import machine
from streams.categorize import Categorizer
from streams.config import FindingFormat, TopicNames
from streams.engines.base import Generation
from streams.engines.recorded import load_recordings
from streams.eval import load_benchmark
from streams.pipeline import ModerationPolicy, to_verdict
from streams.sinks import records_for
from streams.verdict import Outcome, Verdict

__all__ = ["run"]

_MODES: dict[str, tuple[tuple[FindingFormat, ...], bool]] = {
    "baseline": ((), True),
    "privacy": ((), False),
    "findings": ((FindingFormat.ECS, FindingFormat.OCSF), False),
    "findings_text": ((FindingFormat.ECS, FindingFormat.OCSF), True),
}
_HEADERS = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]


def _harmful(recorded: Path, benchmark: Path, limit: int | None) -> list[Verdict]:
    bench = load_benchmark(benchmark)
    outputs = load_recordings(recorded).outputs
    policy = ModerationPolicy(categorizer=Categorizer())
    verdicts = []
    for sample in bench.samples[:limit]:
        event = sample.to_event(benchmark.stem, timestamp=time.time())
        generation = Generation(text=outputs[sample.prompt], model="GuardReasoner", finish_reason="stop")
        verdict = to_verdict(event, generation, engine="recorded:x", policy=policy)
        if verdict.outcome is Outcome.HARMFUL:
            verdicts.append(verdict)
    return verdicts


def _time(verdicts: list[Verdict], findings: tuple[FindingFormat, ...], include_text: bool) -> list[float]:
    topics = TopicNames()
    out = []
    for verdict in verdicts:
        started = time.perf_counter()
        records_for(verdict, topics, _HEADERS, findings=findings, include_text=include_text)
        out.append((time.perf_counter() - started) * 1e6)
    return out


def run(recorded: Path, benchmark: Path, *, limit: int | None = None, repeat: int = 5) -> dict[str, Any]:
    verdicts = _harmful(recorded, benchmark, limit)
    if not verdicts:
        raise SystemExit("no harmful verdict among the samples: nothing to measure")
    runs: dict[str, list[list[float]]] = {mode: [] for mode in _MODES}
    for _ in range(repeat):  # interleaved, so drift on a shared machine hits every mode alike
        for mode, (findings, include_text) in _MODES.items():
            runs[mode].append(_time(verdicts, findings, include_text))
    samples = {mode: [min(times) for times in zip(*timed, strict=True)] for mode, timed in runs.items()}
    result: dict[str, Any] = {
        "benchmark": benchmark.stem,
        "recorded": str(recorded),
        "harmful_verdicts": len(verdicts),
        "repeat": repeat,
        "machine": machine(),
    }
    base = statistics.fmean(samples["baseline"])
    for mode, values in samples.items():
        ordered = sorted(values)
        mean = statistics.fmean(values)
        result[mode] = {
            "mean_us": round(mean, 1),
            "p50_us": round(ordered[len(ordered) // 2], 1),
            "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
            "added_us": round(mean - base, 1),
            "ratio": round(mean / base, 2),
        }
    return result
