"""Replay pieces without a broker: time parsing, run specs, the diff, progress, the replay schema."""

from __future__ import annotations

import io

import pytest

from streams.errors import ConfigError
from streams.replay.diff import Summary, compute_diff
from streams.replay.runner import Progress
from streams.replay.runs import RunSpec, parse_time
from streams.sinks import load_schema


def test_times_are_epoch_seconds_or_iso_with_a_zone() -> None:
    assert parse_time("1764280000.5") == 1764280000.5
    assert parse_time("2025-11-27T21:46:40Z") == 1764280000.0
    assert parse_time("2025-11-27T22:46:40+01:00") == 1764280000.0
    assert parse_time(None) is None
    with pytest.raises(ConfigError, match="time zone"):
        parse_time("2025-11-27T21:46:40")
    with pytest.raises(ConfigError, match="neither"):
        parse_time("yesterday")


def test_run_spec_round_trips_and_selects_by_time() -> None:
    spec = RunSpec(
        run_id="r1", topic="chat.events", ranges={0: (5, 10), 3: (0, 2)}, time_from=100, time_until=200
    )
    assert RunSpec.from_json(spec.to_json()) == spec
    assert spec.total == 7
    assert [spec.selects(t) for t in (99.9, 100, 150, 200, 200.1, None)] == [
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    assert RunSpec(run_id="r", topic="t", ranges={}).selects(None)


def _s(
    event_id: str, outcome: str, answers: tuple[str | None, str | None, str | None], at: float = 1.0
) -> Summary:
    return Summary(event_id, outcome, answers, "m", at)


def test_diff_counts_only_what_changed_and_collapses_by_event_id() -> None:
    originals = {
        "a": _s("a", "harmful", ("harmful", "refusal", "unharmful")),
        "b": _s("b", "unharmful", ("unharmful", "compliance", "unharmful")),
        "c": _s("c", "unparsed", ("unharmful", None, None)),
    }
    replayed = {
        "a": _s("a", "unharmful", ("unharmful", "refusal", "unharmful")),
        "b": _s("b", "unharmful", ("unharmful", "compliance", "unharmful")),
        "c": _s("c", "harmful", ("unharmful", "compliance", "harmful")),
        "d": _s("d", "harmful", ("harmful", None, None)),  # no original
    }
    diff = compute_diff("r", replayed, originals)
    assert diff.to_dict() == {
        "run_id": "r",
        "events": 4,
        "compared": 3,
        "changed": 2,
        "flips": {
            "request": {"harmful->unharmful": 1},
            "completion": {"null->compliance": 1},
            "response": {"null->harmful": 1},
        },
        "outcomes": {"harmful->unharmful": 1, "unparsed->harmful": 1},
    }
    assert [r["event_id"] for r in diff.flipped_records()] == ["a", "c"]
    assert "request    harmful->unharmful" in diff.table()


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar, plain = Tty(), io.StringIO()
    Progress(bar, interval_s=0)(50, 200)
    Progress(plain, interval_s=0)(50, 200)
    assert bar.getvalue().startswith("\r[") and "50/200 (25%)" in bar.getvalue()
    assert plain.getvalue().startswith("replay: 50/200 (25%)") and plain.getvalue().endswith("\n")


def test_the_replay_schema_is_the_archive_schema_plus_the_run() -> None:
    archive, replay = load_schema("archive"), load_schema("replay")
    assert {k: v for k, v in replay["properties"].items() if k in archive["properties"]} == archive[
        "properties"
    ]
    assert set(replay["properties"]) - set(archive["properties"]) == {"run_id", "original"}
    assert set(replay["required"]) == set(archive["required"]) | {"run_id", "original"}
