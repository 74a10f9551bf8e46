"""Replay on the embedded broker: a live worker moderates benchmark samples with GuardReasoner-1B's
recorded outputs, then ``guardstream replay`` re-moderates them with 3B's; the diff must equal a
count made directly from the two recordings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.config import Settings
from streams.eval import load_benchmark
from streams.event import ChatEvent
from streams.parse import ParseStatus, parse
from streams.sinks import validate
from tests.cli import cli_env
from tests.conftest import SiemValidator

from .conftest import SettingsFactory, WorkerFactory, archive_ids, collect, send

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATASET = "XSTestReponseHarmful"
BENCHMARK = "0_6_xstest_response_harmful"


def _events(shared: Path) -> list[ChatEvent]:
    bench = load_benchmark(shared / "benchmark" / f"{BENCHMARK}.json")
    now = time.time()
    return [
        ChatEvent(f"x-{s.index}", f"c-{s.index % 11}", "u", now, s.request, s.response) for s in bench.samples
    ]


def _recorded(shared: Path, model: str) -> dict[str, str]:
    path = shared / "predictions" / model / DATASET / "generated_predictions.jsonl"
    rows = [orjson.loads(line) for line in path.read_bytes().split(b"\n") if line.strip()]
    return {row["prompt"]: row["predict"] for row in rows}


def _expected_diff(shared: Path, events: list[ChatEvent]) -> dict[str, Any]:
    """The diff, counted straight from the two recordings (parsed answers, outcome rule)."""
    from streams.prompt import build_prompt

    old_outputs, new_outputs = _recorded(shared, "1B"), _recorded(shared, "3B")

    def read(text: str, has_response: bool) -> tuple[tuple[str | None, ...], str]:
        parsed = parse(text)
        a = parsed.answers
        answers = tuple(v.value if v is not None else None for v in (a.request, a.completion, a.response))
        if "harmful" in (answers[0], answers[2]):
            outcome = "harmful"
        elif parsed.status(has_response=has_response) is ParseStatus.OK:
            outcome = "unharmful"
        else:
            outcome = "unparsed"
        return answers, outcome

    flips: dict[str, Counter[str]] = {t: Counter() for t in ("request", "completion", "response")}
    outcomes: Counter[str] = Counter()
    changed = 0
    for event in events:
        prompt = build_prompt(event.request, event.response)
        old, old_outcome = read(old_outputs[prompt], event.response is not None)
        new, new_outcome = read(new_outputs[prompt], event.response is not None)
        if old_outcome != new_outcome:
            outcomes[f"{old_outcome}->{new_outcome}"] += 1
        if old != new:
            changed += 1
            for task, a, b in zip(flips, old, new, strict=True):
                if a != b:
                    flips[task][f"{a or 'null'}->{b or 'null'}"] += 1
    return {
        "events": len(events),
        "compared": len(events),
        "changed": changed,
        "flips": {t: dict(sorted(c.items())) for t, c in flips.items() if c},
        "outcomes": dict(sorted(outcomes.items())),
    }


def _cli(settings: Settings, *args: str, log: Path) -> subprocess.Popen[bytes]:
    env = cli_env(settings)
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )


def _json_result(proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 300) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, log.read_text()[-3000:]
    last = out.decode().strip().splitlines()[-1]
    result: dict[str, Any] = orjson.loads(last)
    return result


@pytest.fixture
def moderated(
    shared: Path, settings_factory: SettingsFactory, worker_factory: WorkerFactory
) -> tuple[Settings, list[ChatEvent]]:
    """Live verdicts from the 1B recordings for every sample."""
    settings = settings_factory(engine=f"recorded:{shared}/predictions/1B/{DATASET}")
    events = _events(shared)
    worker = worker_factory(settings)
    send(settings, events)
    assert archive_ids(collect(settings, settings.topics.archive, count=len(events))) == {
        e.id for e in events
    }
    worker.stop()
    return settings, events


def test_replay_with_another_model_reports_exactly_what_changed(
    shared: Path, moderated: tuple[Settings, list[ChatEvent]], tmp_path: Path
) -> None:
    settings, events = moderated
    live_before = {
        t: len(collect(settings, t, idle_s=1.5)) for t in (settings.topics.block, settings.topics.alerts)
    }
    log = tmp_path / "replay.log"
    flips_file = tmp_path / "flips.jsonl"
    proc = _cli(
        settings,
        "replay",
        "--engine",
        f"recorded:{shared}/predictions/3B/{DATASET}",
        "--run-id",
        "run-3b",
        "--json",
        "--flips-out",
        str(flips_file),
        log=log,
    )
    report = _json_result(proc, log)
    expected = _expected_diff(shared, events)
    assert report == {"run_id": "run-3b", **expected}
    assert expected["changed"] > 0  # the two models do disagree on this set

    flipped = [orjson.loads(line) for line in flips_file.read_bytes().splitlines()]
    assert len(flipped) == expected["changed"]
    assert all(f["old"]["answers"] != f["new"]["answers"] for f in flipped)

    replayed = collect(settings, settings.topics.replay, count=len(events))
    for record in replayed:
        validate("replay", record["value"])
        assert record["headers"]["guardstream-replay-run"] == b"run-3b"
        assert record["value"]["run_id"] == "run-3b"
        assert record["value"]["original"]["model"] == f"recorded:{DATASET}"
    # nothing reached the live topics
    for topic, count in live_before.items():
        assert len(collect(settings, topic, idle_s=1.5)) == count
    assert len(collect(settings, settings.topics.archive, idle_s=1.5)) == len(events)

    again = _cli(settings, "diff", "--run-id", "run-3b", "--json", log=log)
    assert _json_result(again, log) == report


def test_a_killed_replay_resumes_to_the_same_end(
    shared: Path, moderated: tuple[Settings, list[ChatEvent]], tmp_path: Path
) -> None:
    settings, events = moderated
    log = tmp_path / "replay.log"
    args = [
        "replay",
        "--engine",
        f"recorded:{shared}/predictions/3B/{DATASET}",
        "--run-id",
        "resumed",
        "--json",
    ]
    first = _cli(settings, *args, "--max-rate", "60", log=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(collect(settings, settings.topics.replay, idle_s=1)) < 60:
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    partial = {r["value"]["event_id"] for r in collect(settings, settings.topics.replay, idle_s=1.5)}
    assert 0 < len(partial) < len(events), "the kill did not land mid-run"

    report = _json_result(_cli(settings, *args, log=log), log)
    assert report == {"run_id": "resumed", **_expected_diff(shared, events)}
    assert "resuming" in log.read_text()


def test_replay_selects_by_record_time_and_can_publish_live(
    shared: Path,
    settings_factory: SettingsFactory,
    worker_factory: WorkerFactory,
    tmp_path: Path,
    siem_validate: SiemValidator,
) -> None:
    settings = settings_factory(engine=f"recorded:{shared}/predictions/1B/{DATASET}")
    events = _events(shared)
    early, late = events[:100], events[100:160]
    send(settings, early)
    time.sleep(1.5)
    cut = time.time()
    time.sleep(1.5)
    send(settings, late)
    log = tmp_path / "replay.log"
    engine = f"recorded:{shared}/predictions/3B/{DATASET}"
    after = _json_result(
        _cli(settings, "replay", "--engine", engine, "--from", str(cut), "--json", log=log), log
    )
    assert after["events"] == len(late)
    assert after["compared"] == 0  # no live worker ran: no originals
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut)) + "Z"
    before = _json_result(
        _cli(settings, "replay", "--engine", engine, "--until", iso, "--publish-live", "--json", log=log), log
    )
    assert before["events"] == len(early)
    blocks = collect(settings, settings.topics.block, idle_s=2)
    assert blocks and all(r["headers"].get("guardstream-replay-run") for r in blocks)
    assert {r["value"]["event_id"] for r in blocks} <= {e.id for e in early}
    ocsf = collect(settings, settings.topics.findings_ocsf, idle_s=2)
    ecs = collect(settings, settings.topics.findings_ecs, idle_s=2)
    assert ocsf and all(":replay:" in r["value"]["finding_info"]["uid"] for r in ocsf)
    assert len(ecs) == len(ocsf) and all(":replay:" in r["value"]["event"]["id"] for r in ecs)
    siem_validate("ocsf", [orjson.dumps(r["value"]) for r in ocsf])
    siem_validate("ecs", [orjson.dumps(r["value"]) for r in ecs])
