"""``guardstream export``: reviewed verdicts in the store become GuardReasoner SFT / DPO records."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from loadtest.verdicts import archive_records, replay_record
from streams.engines.recorded import load_recordings
from streams.eval import load_benchmark
from streams.prompt import INSTRUCTION
from streams.store.queue import get_verdict
from streams.store.reviews import add_review, decide_review
from streams.store.roles import Role
from streams.store.users import User
from tests.cli import cli_env, run_cli

from .consoles import add_users, seed
from .pg import postgres, store_url

pytestmark = pytest.mark.integration
__all__ = ["postgres", "store_url"]  # fixtures used here

BENCH = "0_6_xstest_response_harmful"


def review(url: str, event_id: str, **body: Any) -> None:
    async def run() -> None:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            verdict = await get_verdict(conn, event_id)
            assert verdict is not None, event_id
            decision = decide_review(verdict.item, **body)
            await add_review(conn, verdict.item, User("rita", Role.REVIEWER), decision)
        finally:
            await conn.close()

    asyncio.run(run())


def export(url: str, fmt: str, out: Path) -> dict[str, Any]:
    proc = run_cli(
        "export", "--format", fmt, "--out", str(out), env=cli_env(GUARDSTREAM_STORE_URL=url), timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary: dict[str, Any] = orjson.loads(proc.stderr.strip().splitlines()[-1])
    return summary


def test_sft_and_dpo_records_come_only_from_outputs_that_support_the_review(
    shared: Path, store_url: str, tmp_path: Path
) -> None:
    bench = load_benchmark(shared / "benchmark" / f"{BENCH}.json")
    raw_inputs = {
        i: s["input"]
        for i, s in enumerate(orjson.loads((shared / "benchmark" / f"{BENCH}.json").read_bytes()))
    }
    out_1b = load_recordings(shared / "predictions" / "1B" / "XSTestReponseHarmful").outputs
    out_3b = load_recordings(shared / "predictions" / "3B" / "XSTestReponseHarmful").outputs
    live = archive_records(bench.samples, out_1b, prefix="xs", model="GR-1B", moderated_at=time.time())
    by_id = {r["event_id"]: r for r in live}
    replays = [
        replay_record(r, "run-3b", by_id.get(r["event_id"]))
        for r in archive_records(bench.samples, out_3b, prefix="xs", model="GR-3B", moderated_at=time.time())
    ]
    no_text = archive_records(
        bench.samples[:3], out_1b, prefix="quiet", model="GR-1B", moderated_at=time.time(), retain_text=False
    )
    seed(store_url, live + replays + no_text)
    add_users(store_url)
    replay_by_id = {r["event_id"]: r for r in replays}

    def ok(record: dict[str, Any]) -> bool:
        return record["status"] == "ok"

    disagree = [
        e
        for e, r in by_id.items()
        if e in replay_by_id and ok(r) and ok(replay_by_id[e]) and r["answers"] != replay_by_id[e]["answers"]
    ]
    agree = [
        e
        for e, r in by_id.items()
        if e in replay_by_id and ok(r) and ok(replay_by_id[e]) and r["answers"] == replay_by_id[e]["answers"]
    ]
    assert len(disagree) >= 3 and len(agree) >= 3, "the recordings give no disagreements: nothing to test"
    confirmed, corrected, unsupported, twice = agree[0], disagree[0], agree[1], disagree[1]
    review(store_url, confirmed, action="confirm", note="right")
    review(
        store_url, corrected, action="correct", answers=replay_by_id[corrected]["answers"], note="3B is right"
    )
    flipped = {"refusal": "compliance", "compliance": "refusal"}[by_id[unsupported]["answers"]["completion"]]
    review(store_url, unsupported, action="correct", answers={"completion": flipped})  # no output says this
    review(store_url, twice, action="correct", answers=replay_by_id[twice]["answers"])
    review(store_url, twice, action="confirm")  # the newest review is the label: back to the live answers
    quiet = next(r["event_id"] for r in no_text if ok(r))
    review(store_url, quiet, action="confirm")

    sft = export(store_url, "sft", tmp_path / "sft.jsonl")
    records = [orjson.loads(line) for line in (tmp_path / "sft.jsonl").read_bytes().splitlines()]
    assert sft["reviewed_events"] == 5 and sft["written"] == 3 == len(records)
    assert sorted((s["event_id"], s["reason"]) for s in sft["skipped"]) == [
        (quiet, "no_chat_text"),
        (unsupported, "no_agreeing_output"),
    ]
    by_input = {r["input"]: r for r in records}
    for event_id, output in (
        (confirmed, by_id[confirmed]["raw"]),
        (corrected, replay_by_id[corrected]["raw"]),
        (twice, by_id[twice]["raw"]),
    ):
        index = int(event_id.rsplit("-", 1)[1])
        record = by_input[raw_inputs[index]]  # the input exactly as GuardReasoner's data has it
        assert set(record) == {"instruction", "input", "output"}
        assert record["instruction"] == INSTRUCTION
        assert record["output"] == output

    dpo = export(store_url, "dpo", tmp_path / "dpo.jsonl")
    pairs = [orjson.loads(line) for line in (tmp_path / "dpo.jsonl").read_bytes().splitlines()]
    assert dpo["written"] == 1 == len(pairs)
    (pair,) = pairs
    assert set(pair) == {"instruction", "input", "chosen", "rejected"}
    assert pair["input"] == raw_inputs[int(corrected.rsplit("-", 1)[1])]
    assert pair["chosen"] == replay_by_id[corrected]["raw"] and pair["rejected"] == by_id[corrected]["raw"]
    assert dpo["skipped_by_reason"] == {"not_a_correction": 3, "no_agreeing_output": 1}
