"""The in-process moderation benchmark measures the worker's real per-event path."""

from __future__ import annotations

import pytest

from loadtest.moderate import run


def test_it_times_every_stage_of_the_real_path_against_a_json_round_trip() -> None:
    result = run(events=300, rounds=1)
    stages = result["stages_us"]
    assert set(stages) == {"decode", "moderate", "records"} and all(us > 0 for us in stages.values())
    assert result["us_per_event"] == pytest.approx(sum(stages.values()), abs=0.2)
    assert result["ratio"] == pytest.approx(
        result["baseline_us_per_event"] / result["us_per_event"], rel=0.05
    )
    # the service's defaults: every prompt-only event exits early, one archive record each
    assert result["early_exit"] is True and result["cache"] is True
    assert result["early_exit_share"] == 1.0 and result["records_per_event"] == 1.0
