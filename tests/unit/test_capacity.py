"""``guardstream capacity`` on the recorded GuardReasoner outputs and on archive records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import orjson
import pytest

from streams.capacity import (
    Assumptions,
    Profile,
    plan,
    profile,
    samples_from_archive,
    samples_from_recorded,
    tokens_per_event,
)
from streams.cli import main


def _assumptions(**changes: object) -> Assumptions:
    values: dict[str, object] = {
        "prompt_only_share": 0.5,
        "cache_hit_rate": 0.0,
        "early_exit_saving": 0.6,
        "gpu_tokens_per_s": 10_000,
        "gpu_source": "test",
        "target_utilization": 0.5,
        "worker_events_per_s": 100.0,
        "max_in_flight": 10,
        "verdict_latency_s": 2.0,
    }
    values.update(changes)
    return Assumptions(**values)  # type: ignore[arg-type]


def test_profile_of_the_recorded_outputs_matches_an_independent_count(shared: Path) -> None:
    folder = shared / "predictions" / "1B"
    measured = profile(samples_from_recorded(folder, chars_per_token=4.0))
    lengths: dict[bool, list[int]] = {True: [], False: []}
    after_task1 = total_prompt_only = 0
    for path in folder.rglob("generated_predictions.jsonl"):
        for line in path.open(encoding="utf-8"):
            record = json.loads(line)
            prompt_only = record["prompt"].endswith("AI assistant:\nNone\n\n")
            text = record["predict"]
            lengths[prompt_only].append(len(text))
            if prompt_only and text.find("# Task 2") > 0:
                after_task1 += len(text) - text.find("# Task 2")
                total_prompt_only += len(text)
    assert measured.prompt_only == len(lengths[True]) and measured.exchanges == len(lengths[False])
    assert measured.prompt_only_output_tokens == pytest.approx(sum(lengths[True]) / len(lengths[True]) / 4.0)
    assert measured.exchange_output_tokens == pytest.approx(sum(lengths[False]) / len(lengths[False]) / 4.0)
    assert measured.early_exit_saving == pytest.approx(after_task1 / total_prompt_only)
    # what the README states: ~300 tokens per verdict, early exit saves ~57-60 % of prompt-only output
    assert 250 < measured.exchange_output_tokens * 4.0 / 4.2 < 400
    assert 0.5 < (measured.early_exit_saving or 0) < 0.7


def test_plan_arithmetic() -> None:
    p = Profile(
        samples=4,
        prompt_only=2,
        exchanges=2,
        prompt_only_output_tokens=200.0,
        exchange_output_tokens=400.0,
        prompt_tokens=300.0,
        early_exit_saving=0.5,
        cache_hit_rate=None,
    )
    a = _assumptions()
    assert tokens_per_event(p, a, early_exit=False) == pytest.approx(0.5 * 200 + 0.5 * 400)
    assert tokens_per_event(p, a, early_exit=True) == pytest.approx(0.5 * 200 * 0.4 + 0.5 * 400)
    (row,) = plan(p, a, [100.0])
    assert row.output_tokens_per_s == pytest.approx(30_000)
    assert row.gpus == math.ceil(30_000 / 5_000)
    assert row.gpus_early_exit == math.ceil(100 * 240 / 5_000)
    assert row.workers == max(math.ceil(100 / 100), math.ceil(100 * 2.0 / 10))
    cached = plan(p, _assumptions(cache_hit_rate=0.5), [100.0])[0]
    assert cached.output_tokens_per_s == pytest.approx(15_000)


def test_archive_records_use_the_engines_counts_and_cache_flag() -> None:
    raw = "# Task 1\nabc\n# Task 2\nxyz"
    records = [
        {"has_response": False, "usage": {"prompt_tokens": 300, "completion_tokens": 100}, "raw": raw},
        {"has_response": True, "usage": {"prompt_tokens": 500, "completion_tokens": 300}},
        {"has_response": True, "usage": {"prompt_tokens": None, "completion_tokens": None}},  # engine error
        {"has_response": True, "cached": True, "usage": {"prompt_tokens": None, "completion_tokens": None}},
    ]
    measured = profile(samples_from_archive(records), cached_known=True)
    assert (measured.prompt_only, measured.exchanges, measured.samples) == (1, 1, 3)
    assert measured.prompt_only_output_tokens == 100 and measured.exchange_output_tokens == 300
    assert measured.cache_hit_rate == pytest.approx(1 / 3)
    assert measured.early_exit_saving == pytest.approx(1 - raw.find("# Task 2") / len(raw))


def test_command_prints_json_and_table(
    shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shared / "predictions" / "3B" / "HarmBenchPrompt"
    with pytest.raises(SystemExit) as done:
        main(
            [
                "capacity",
                "--recorded",
                str(folder),
                "--rate",
                "50",
                "500",
                "--cache-hit-rate",
                "0.2",
                "--json",
            ]
        )
    assert done.value.code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["assumptions"]["cache_hit_rate"] == 0.2
    assert (
        report["assumptions"]["gpu_tokens_per_s"] == 12_500
        and "morphllm" in report["assumptions"]["gpu_source"]
    )
    assert report["measured"]["exchanges"] == 0  # HarmBench prompt: prompt-only checks
    assert [r["events_per_s"] for r in report["plan"]] == [50, 500]
    assert report["plan"][1]["gpus"] >= report["plan"][1]["gpus_early_exit"] >= 1
    archive = tmp_path / "archive.jsonl"
    archive.write_bytes(
        b"\n".join(
            orjson.dumps(
                {"has_response": i % 2 == 0, "usage": {"prompt_tokens": 10, "completion_tokens": 300}}
            )
            for i in range(10)
        )
    )
    with pytest.raises(SystemExit):
        main(["capacity", "--archive", str(archive), "--gpu-tokens-per-s", "3000"])
    table = capsys.readouterr().out
    assert "events/s" in table and "GPUs (early exit)" in table and "--gpu-tokens-per-s" in table
