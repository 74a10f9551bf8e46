"""``guardstream capacity``: events/s → GPUs and workers, from measured tokens per verdict.

Tokens per verdict come from data: archive records of a real run (a JSONL file or the
archive topic; ``usage.completion_tokens`` / ``prompt_tokens`` as the engine counted
them, ``has_response``, ``cached`` where the record has it) or recorded GuardReasoner
outputs (``generated_predictions.jsonl`` files; tokens estimated from characters at
``chars_per_token``). Prompt-only checks and full exchanges are counted apart. Early exit
(generation stops at Task 1's conclusion for prompt-only checks) saves the share of
output written after Task 1, measured on the same outputs (``# Task 2`` onwards). The
GPU side is a per-GPU generation throughput: a published figure (:data:`GPU_PRESETS`,
each with its source) or your own measurement. Everything that is not measured is an
assumption and is printed as one.

    expected output tokens per event = (1 - cache hit rate) ×
        (prompt-only share × prompt-only tokens × (1 - early-exit saving, with early exit)
         + (1 - prompt-only share) × exchange tokens)
    GPUs    = ceil(events/s × tokens per event / (GPU tokens/s × target utilisation))
    workers = max(ceil(events/s / worker events/s),                  (worker CPU)
                  ceil(events/s × verdict latency / max in flight))  (Little's law)
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.cli_args import with_bootstrap
from streams.config import Settings
from streams.errors import ConfigError

__all__ = [
    "GPU_PRESETS",
    "Assumptions",
    "Profile",
    "Sample",
    "add_command",
    "plan",
    "profile",
    "samples_from_archive",
    "samples_from_recorded",
]

# Llama-3 tokenizers write about 4.2 characters of GuardReasoner's English reasoning per token:
# ../shared/guardreasoner/README.md measured median ~1,270 characters ≈ 300 tokens and p99
# ~2,100 characters ≈ 520 tokens on recorded outputs (4.0-4.2).
CHARS_PER_TOKEN = 4.2
# Share of a prompt-only output that early exit does not generate, when no outputs are at hand
# to measure it (measured on the recorded 1B/3B outputs: 0.57-0.60, see README).
EARLY_EXIT_SAVING = 0.57
_PROMPT_ONLY_TAIL = "AI assistant:\nNone\n\n"
_TASK_2 = "# Task 2"


@dataclass(frozen=True, slots=True)
class GpuPreset:
    tokens_per_s: float
    source: str


# Output tokens/s of one GPU at high concurrency (vLLM). Published figures for other models or
# GPUs than yours are assumptions: measure with `vllm bench serve` and pass --gpu-tokens-per-s.
GPU_PRESETS = {
    "h100-8b": GpuPreset(
        12_500,
        "Llama-3.1-8B BF16 on 1x H100 80GB with vLLM (FlashInfer, 0.8 GPU utilisation): ~12,500 output "
        "tok/s, third-party figure compiled at morphllm.com/vllm-benchmarks (2026); GuardReasoner-8B is "
        "a Llama-3.1-8B; for GuardReasoner-1B/3B (Llama-3.2) no published vLLM figure was found, and "
        "this 8B figure is a conservative lower bound for them",
    ),
    "a100-8b": GpuPreset(
        6_250,
        "h100-8b halved: H100 gives ~2x the vLLM throughput of A100 (Lambda Labs, vllm-benchmark "
        "report benchmark_v0.md); derived, not measured",
    ),
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One verdict's cost. ``task1_share``: share of the output before Task 2 (None: unknown)."""

    has_response: bool
    prompt_tokens: float
    output_tokens: float
    task1_share: float | None = None
    cached: bool = False


def _task1_share(text: str) -> float | None:
    at = text.find(_TASK_2)
    return at / len(text) if at > 0 else None


def samples_from_recorded(folder: Path, *, chars_per_token: float = CHARS_PER_TOKEN) -> list[Sample]:
    """Recorded GuardReasoner outputs (every ``generated_predictions.jsonl`` under ``folder``)."""
    files = sorted(folder.rglob("generated_predictions.jsonl")) if folder.is_dir() else [folder]
    out = []
    for path in files:
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            record = orjson.loads(line)
            prompt, text = str(record["prompt"]), str(record["predict"])
            out.append(
                Sample(
                    has_response=not prompt.endswith(_PROMPT_ONLY_TAIL),
                    prompt_tokens=len(prompt) / chars_per_token,
                    output_tokens=len(text) / chars_per_token,
                    task1_share=_task1_share(text),
                )
            )
    if not out:
        raise ConfigError(f"no recorded outputs (generated_predictions.jsonl) in {folder}")
    return out


def samples_from_archive(records: Iterable[dict[str, Any]]) -> list[Sample]:
    """Archive records (``moderation.archive``) with the engine's token counts."""
    out = []
    for record in records:
        usage = record.get("usage") or {}
        completion = usage.get("completion_tokens")
        if record.get("cached"):
            out.append(Sample(bool(record.get("has_response")), 0.0, 0.0, cached=True))
        elif completion is not None:
            raw = record.get("raw")
            out.append(
                Sample(
                    has_response=bool(record.get("has_response")),
                    prompt_tokens=float(usage.get("prompt_tokens") or 0),
                    output_tokens=float(completion),
                    task1_share=_task1_share(raw) if isinstance(raw, str) else None,
                )
            )
    if not out:
        raise ConfigError("no archive record with token usage (usage.completion_tokens) found")
    return out


@dataclass(frozen=True, slots=True)
class Profile:
    """Measured from the samples."""

    samples: int
    prompt_only: int
    exchanges: int
    prompt_only_output_tokens: float  # mean, per engine-moderated verdict
    exchange_output_tokens: float
    prompt_tokens: float
    early_exit_saving: float | None  # share of prompt-only output tokens after Task 1
    cache_hit_rate: float | None  # None: the records do not say


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def profile(samples: Sequence[Sample], *, cached_known: bool = False) -> Profile:
    generated = [s for s in samples if not s.cached]
    prompt_only = [s for s in generated if not s.has_response]
    exchanges = [s for s in generated if s.has_response]
    shares = [(s.output_tokens, s.task1_share) for s in prompt_only if s.task1_share is not None]
    tokens = sum(t for t, _ in shares)
    saving = sum(t * (1 - share) for t, share in shares) / tokens if tokens else None
    return Profile(
        samples=len(samples),
        prompt_only=len(prompt_only),
        exchanges=len(exchanges),
        prompt_only_output_tokens=_mean([s.output_tokens for s in prompt_only]),
        exchange_output_tokens=_mean([s.output_tokens for s in exchanges]),
        prompt_tokens=_mean([s.prompt_tokens for s in generated]),
        early_exit_saving=saving,
        cache_hit_rate=(len(samples) - len(generated)) / len(samples) if cached_known else None,
    )


@dataclass(frozen=True, slots=True)
class Assumptions:
    prompt_only_share: float
    cache_hit_rate: float
    early_exit_saving: float
    gpu_tokens_per_s: float
    gpu_source: str
    target_utilization: float = 0.7
    worker_events_per_s: float = 3200.0
    max_in_flight: int = 256
    verdict_latency_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Row:
    events_per_s: float
    output_tokens_per_s: float
    gpus: int
    output_tokens_per_s_early_exit: float
    gpus_early_exit: int
    workers: int


def tokens_per_event(p: Profile, a: Assumptions, *, early_exit: bool) -> float:
    prompt_only = p.prompt_only_output_tokens * (1 - a.early_exit_saving if early_exit else 1.0)
    mix = a.prompt_only_share * prompt_only + (1 - a.prompt_only_share) * p.exchange_output_tokens
    return (1 - a.cache_hit_rate) * mix


def plan(p: Profile, a: Assumptions, rates: Sequence[float]) -> list[Row]:
    usable = a.gpu_tokens_per_s * a.target_utilization
    rows = []
    for rate in rates:
        full = rate * tokens_per_event(p, a, early_exit=False)
        short = rate * tokens_per_event(p, a, early_exit=True)
        workers = max(
            math.ceil(rate / a.worker_events_per_s),
            math.ceil(rate * a.verdict_latency_s / a.max_in_flight),
            1,
        )
        rows.append(
            Row(
                rate,
                round(full, 1),
                math.ceil(full / usable),
                round(short, 1),
                math.ceil(short / usable),
                workers,
            )
        )
    return rows


def _report(p: Profile, a: Assumptions, rows: list[Row], source: str) -> dict[str, Any]:
    return {
        "source": source,
        "measured": asdict(p),
        "assumptions": asdict(a),
        "tokens_per_event": round(tokens_per_event(p, a, early_exit=False), 1),
        "tokens_per_event_early_exit": round(tokens_per_event(p, a, early_exit=True), 1),
        "plan": [asdict(r) for r in rows],
    }


def _table(report: dict[str, Any]) -> str:
    m, a = report["measured"], report["assumptions"]
    saving = m["early_exit_saving"]
    lines = [
        f"capacity from {report['source']}: {m['samples']} verdicts "
        f"({m['prompt_only']} prompt-only, {m['exchanges']} exchanges)",
        "measured:",
        f"  output tokens per verdict: prompt-only {m['prompt_only_output_tokens']:.0f}, "
        f"exchange {m['exchange_output_tokens']:.0f}; prompt tokens {m['prompt_tokens']:.0f}",
        "  early-exit saving on prompt-only output: "
        + (f"{saving:.1%}" if saving is not None else "not measurable here"),
        "assumptions (flags):",
        f"  prompt-only share {a['prompt_only_share']:.0%}, cache hit rate {a['cache_hit_rate']:.0%}, "
        f"early-exit saving {a['early_exit_saving']:.0%}",
        f"  GPU: {a['gpu_tokens_per_s']:,.0f} output tok/s at {a['target_utilization']:.0%} of it "
        f"({a['gpu_source']})",
        f"  worker: {a['worker_events_per_s']:,.0f} events/s of CPU, {a['max_in_flight']} in flight, "
        f"{a['verdict_latency_s']:g} s per verdict",
        f"tokens per event: {report['tokens_per_event']}, "
        f"with early exit {report['tokens_per_event_early_exit']}",
        "",
        f"{'events/s':>10} {'output tok/s':>13} {'GPUs':>6} {'tok/s (early exit)':>19} "
        f"{'GPUs (early exit)':>18} {'workers':>8}",
    ]
    for r in report["plan"]:
        lines.append(
            f"{r['events_per_s']:>10,.0f} {r['output_tokens_per_s']:>13,.0f} {r['gpus']:>6} "
            f"{r['output_tokens_per_s_early_exit']:>19,.0f} {r['gpus_early_exit']:>18} {r['workers']:>8}"
        )
    lines.append("workers ≤ partitions of the events topic; GPUs are vLLM servers (one GPU each).")
    return "\n".join(lines)


async def _read_archive(settings: Settings, topic: str, idle_s: float) -> list[dict[str, Any]]:
    from streams.client import read_topic

    records = []
    async for record in read_topic(settings.kafka, topic, idle_timeout_s=idle_s):
        records.append(orjson.loads(record.value))
    return records


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1)")
    return value


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("capacity", help="events/s → GPUs and workers, from measured tokens per verdict")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--recorded", metavar="DIR", help="recorded GuardReasoner outputs (generated_predictions.jsonl)"
    )
    src.add_argument("--archive", metavar="FILE", help="archive records of a real run, one JSON per line")
    src.add_argument("--topic", help="read archive records from this topic (e.g. moderation.archive)")
    p.add_argument("--bootstrap", help="with --topic (default GUARDSTREAM_KAFKA_BOOTSTRAP)")
    p.add_argument(
        "--rate", type=float, nargs="+", default=[10, 100, 1000, 10000], help="events/s to size for"
    )
    p.add_argument(
        "--gpu", choices=sorted(GPU_PRESETS), default="h100-8b", help="published throughput preset"
    )
    p.add_argument(
        "--gpu-tokens-per-s", type=float, help="your GPU's measured output tokens/s (overrides --gpu)"
    )
    p.add_argument(
        "--utilization", type=_fraction, default=0.7, help="plan GPUs for this share of peak (0.7)"
    )
    p.add_argument(
        "--cache-hit-rate", type=_fraction, help="events answered by a verdict cache (default: data, or 0)"
    )
    p.add_argument("--early-exit-saving", type=_fraction, help=f"default: measured, else {EARLY_EXIT_SAVING}")
    p.add_argument(
        "--prompt-only-share", type=float, help="share of events without a response (default: data)"
    )
    p.add_argument("--chars-per-token", type=float, default=CHARS_PER_TOKEN, help="for --recorded (4.2)")
    p.add_argument("--worker-events-per-s", type=float, default=3200.0, help="one worker's CPU limit (3200)")
    p.add_argument("--max-in-flight", type=int, help="per worker (default GUARDSTREAM_BATCH_MAX_IN_FLIGHT)")
    p.add_argument(
        "--verdict-latency-s", type=float, default=5.0, help="engine time per verdict under load (5)"
    )
    p.add_argument("--idle-timeout", type=float, default=5.0, help="with --topic: stop after this long idle")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_capacity)


def cmd_capacity(args: argparse.Namespace, settings: Settings) -> int:
    if args.recorded:
        samples = samples_from_recorded(Path(args.recorded), chars_per_token=args.chars_per_token)
        source, cached_known = (
            f"recorded outputs in {args.recorded} (tokens = characters / {args.chars_per_token:g})",
            False,
        )
    else:
        if args.archive:
            records = [orjson.loads(x) for x in Path(args.archive).read_bytes().splitlines() if x.strip()]
            source = f"archive records in {args.archive}"
        else:
            settings = with_bootstrap(settings, args.bootstrap)
            records = asyncio.run(_read_archive(settings, args.topic, args.idle_timeout))
            source = f"archive records on {args.topic}"
        samples = samples_from_archive(records)
        cached_known = any("cached" in r for r in records)
    measured = profile(samples, cached_known=cached_known)
    generated = measured.prompt_only + measured.exchanges
    share = args.prompt_only_share if args.prompt_only_share is not None else measured.prompt_only / generated
    if args.gpu_tokens_per_s:
        gpu_tps, gpu_source = args.gpu_tokens_per_s, "--gpu-tokens-per-s"
    else:
        gpu_tps, gpu_source = (
            GPU_PRESETS[args.gpu].tokens_per_s,
            f"{args.gpu}: {GPU_PRESETS[args.gpu].source}",
        )
    saving = args.early_exit_saving
    if saving is None:
        saving = measured.early_exit_saving if measured.early_exit_saving is not None else EARLY_EXIT_SAVING
    cache = args.cache_hit_rate if args.cache_hit_rate is not None else (measured.cache_hit_rate or 0.0)
    assumptions = Assumptions(
        prompt_only_share=share,
        cache_hit_rate=cache,
        early_exit_saving=saving,
        gpu_tokens_per_s=gpu_tps,
        gpu_source=gpu_source,
        target_utilization=args.utilization,
        worker_events_per_s=args.worker_events_per_s,
        max_in_flight=args.max_in_flight or settings.batch.max_in_flight,
        verdict_latency_s=args.verdict_latency_s,
    )
    report = _report(measured, assumptions, plan(measured, assumptions, args.rate), source)
    if args.json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
    else:
        print(_table(report))
    return 0
