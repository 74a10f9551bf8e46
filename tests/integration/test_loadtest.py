"""The benchmark commands run end to end on tiny inputs and print valid JSON (no speed is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _loadtest(*args: str, timeout: float = 240) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = orjson.loads(proc.stdout)
    return result


def test_throughput_command() -> None:
    result = _loadtest("throughput", "--events", "300")
    assert result["events"] == 300
    assert isinstance(result["raw_eps"], float) and result["raw_eps"] > 0
    assert isinstance(result["pipeline_eps"], float) and result["pipeline_eps"] > 0
    assert result["ratio"] == pytest.approx(result["pipeline_eps"] / result["raw_eps"], rel=0.01)
    assert result["batch"] == {"max_in_flight": 256, "max_unacked": 4096}
    # the baseline publishes what the service publishes: one archive-sized record per event
    assert result["output_records_per_event"] == 1 and result["output_record_bytes"] > 1000
    # the Faust floor ran (all 300 outputs arrived, or it raises) and is reported against both sides
    assert isinstance(result["faust_floor_eps"], float) and result["faust_floor_eps"] > 0
    assert result["floor_ratio"] == pytest.approx(result["faust_floor_eps"] / result["raw_eps"], rel=0.01)
    assert result["pipeline_vs_floor"] == pytest.approx(
        result["pipeline_eps"] / result["faust_floor_eps"], rel=0.01
    )


def test_profile_command_writes_a_flame_graph(tmp_path: Path) -> None:
    flame = tmp_path / "flame.svg"
    result = _loadtest("profile", "--events", "2000", "--out", str(flame))
    assert flame.read_text().lstrip().startswith("<?xml")
    shares = dict(result["top_inclusive_time"])  # type: ignore[arg-type]
    assert any("moderate_one" in frame for frame in shares)


def test_latency_command() -> None:
    result = _loadtest("latency", "--rate", "40", "--seconds", "2")
    (row,) = result["results"]  # type: ignore[misc]
    assert row["events"] == 80 and row["verdicts"] == 80
    assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert row["p50_ms"] >= 200  # the fake engine's 0.2 s service time is part of every latency


def test_burst_command_writes_a_plot(tmp_path: Path) -> None:
    plot = tmp_path / "burst.png"
    result = _loadtest("burst", "--events", "200", "--plot", str(plot))
    assert result["verdicts"] == 200
    curve = result["lag_curve"]
    assert isinstance(curve, list) and curve[-1][1] == 0  # drained
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.vllm
def test_engine_command(fixture_model: Path) -> None:
    result = _loadtest("engine", "--events", "8", "--max-tokens", "64", "--runs", "1", timeout=400)
    assert result["events"] == 8 and result["runs"] == 1
    ratio = result["ratio"]
    assert isinstance(ratio, dict) and ratio["min"] <= ratio["median"] <= ratio["max"] and ratio["median"] > 0
    assert result["same_tokens"] is True  # greedy on both sides: the same outputs
    offline, service, inprocess_tokens = result["tokens"][0]  # type: ignore[index]
    assert offline == service == inprocess_tokens > 0
    # the baseline with the engine core in-process is measured and compared too
    inprocess = result["ratio_vs_inprocess"]
    assert isinstance(inprocess, dict) and inprocess["median"] > 0
    assert result["offline_inprocess_vps"]["median"] > 0  # type: ignore[index]


@pytest.mark.vllm
def test_early_exit_command(fixture_model: Path) -> None:
    result = _loadtest("early-exit", "--events", "8", "--max-tokens", "256", timeout=400)
    assert result["events"] == 8 and result["same_answers"] is True
    full, early = result["tokens_per_verdict_full"], result["tokens_per_verdict_early_exit"]
    assert isinstance(full, float) and isinstance(early, float) and early <= full
    assert result["saved_fraction"] == pytest.approx(1 - early / full, abs=0.01)


def test_scaleout_command() -> None:
    result = _loadtest("scaleout", "--events", "60", timeout=480)
    for case in ("headroom", "engine_bound"):
        row = result[case]
        assert isinstance(row, dict)
        assert row["workers_1_events_per_s"] > 0 and row["workers_3_events_per_s"] > 0
        assert row["ratio_3_to_1"] == pytest.approx(
            row["workers_3_events_per_s"] / row["workers_1_events_per_s"], abs=0.01
        )


def test_store_command() -> None:
    result = _loadtest("store", "--events", "600", "--batch-max-size", "100")
    assert result["events"] == result["stored"] == 600
    assert isinstance(result["sink_verdicts_per_s"], float) and result["sink_verdicts_per_s"] > 0
    assert isinstance(result["copy_rows_per_s"], float) and result["copy_rows_per_s"] > 0
    assert result["ratio"] == pytest.approx(
        result["sink_verdicts_per_s"] / result["copy_rows_per_s"], rel=0.01
    )


def test_console_command() -> None:
    result = _loadtest("console", "--rows", "3000", "--requests", "5")
    pages = result["pages"]
    assert isinstance(pages, dict) and {"api_first", "api_deep", "html_first", "html_deep"} <= set(pages)
    for timing in pages.values():
        assert 0 < timing["p50_ms"] <= timing["p99_ms"]
    assert result["ratio"] == pytest.approx(
        pages["api_deep"]["p50_ms"] / pages["api_first"]["p50_ms"], rel=0.01
    )
