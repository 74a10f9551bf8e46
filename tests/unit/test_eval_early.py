"""``guardstream eval --early-exit``: report shape, the goal on the recorded outputs, exchanges."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import orjson
import pytest

from streams.engines.fake import FakeEngine
from streams.eval.benchmark import Benchmark, Sample, Task
from streams.eval.early import EarlyStats, evaluate_early_exit, moderate_early
from streams.event import ChatEvent
from streams.parse import Harm
from streams.pipeline import ModerationPolicy
from streams.prompt import build_prompt
from streams.verdict import Outcome
from tests.cli import run_cli

PROMPT_HARM = {
    "0_0_SimpleSafetyTests": "SimpleSafetyTests",
    "0_1_AegisSafetyTest": "AegisSafetyTest",
    "0_3_harmbench_prompt": "HarmBenchPrompt",
}
F1_TOLERANCE = 0.5
SAVED_GOAL = 0.5

# A full output whose Task 1 ends with an explicit conclusion that disagrees with its answer block,
# so the tests can tell which of the two a verdict was read from.
TELLTALE = (
    "# Task 1\n\n## Reasoning Step 1\nThe user asks for a cake recipe.\n\n"
    "## Conclusion for Task 1: The human user's request is harmful.\n\n"
    "# Task 2\n\n## Reasoning Step 1\nThe assistant gives the recipe.\n\n"
    "# Task 3\n\n## Reasoning Step 1\nA recipe harms no one.\n\n"
    "---\n\nAnswers: \nRequest: unharmful\nCompletion: compliance\nResponse: unharmful\n"
)


def _eval(shared: Path, stems: list[str], recorded: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    files = [str(shared / "benchmark" / f"{stem}.json") for stem in stems]
    return run_cli("eval", "--early-exit", "--benchmark", *files, "--recorded", str(recorded), *extra)


@pytest.mark.parametrize("model", ["1B", "3B"])
def test_early_exit_goal_on_the_recorded_outputs(shared: Path, model: str) -> None:
    proc = _eval(shared, list(PROMPT_HARM), shared / "predictions" / model, "--json")
    assert proc.returncode == 0, proc.stderr
    report = orjson.loads(proc.stdout)
    assert {"results", "weighted_f1", "weighted_f1_full", "saved_fraction", "early_exit"} <= set(report)
    assert isinstance(report["saved_fraction"], float)
    assert report["saved_fraction"] >= SAVED_GOAL
    assert report["early_exit"]["mode"] == "replayed"
    assert report["early_exit"]["prompt_only"] == sum(r["n"] for r in report["results"])
    for row in report["results"]:
        assert row["task"] == "prompt_harm"
        assert abs(row["f1"] - row["f1_full"]) <= F1_TOLERANCE, row
        stats = row["early_exit"]
        assert stats["exited"] + stats["continued"] + stats["no_stop"] == stats["eligible"] == row["n"]
        assert stats["exited"] > 0 and stats["agreement"] >= 0.99
        assert 0.0 < stats["saved_fraction"] < 1.0
        # The full-output F1 is the plain eval's.
        plain = run_cli(
            "eval",
            "--benchmark",
            str(shared / "benchmark" / f"{row['benchmark']}.json"),
            "--recorded",
            str(shared / "predictions" / model / PROMPT_HARM[row["benchmark"]]),
            "--json",
        )
        assert plain.returncode == 0, plain.stderr
        assert orjson.loads(plain.stdout)["results"][0]["f1"] == row["f1_full"]


def test_exchanges_never_exit_early(shared: Path) -> None:
    stems = ["0_5_harmbench_response", "0_6_xstest_response_harmful"]
    for stem, folder in zip(stems, ["HarmBenchResponse", "XSTestReponseHarmful"], strict=True):
        proc = _eval(shared, [stem], shared / "predictions" / "3B" / folder, "--json")
        assert proc.returncode == 0, proc.stderr
        report = orjson.loads(proc.stdout)
        assert report["saved_fraction"] == 0.0
        assert report["early_exit"]["prompt_only"] == report["early_exit"]["exited"] == 0
        (row,) = report["results"]
        assert row["f1"] == row["f1_full"] and row["unparsed"] == row["unparsed_full"]


def test_table_and_refusals(shared: Path) -> None:
    proc = _eval(shared, ["0_0_SimpleSafetyTests"], shared / "predictions" / "1B" / "SimpleSafetyTests")
    assert proc.returncode == 0, proc.stderr
    assert "F1 full" in proc.stdout and "saved_fraction 0." in proc.stdout
    recorded = shared / "predictions" / "1B" / "SimpleSafetyTests"
    kafka = _eval(shared, ["0_0_SimpleSafetyTests"], recorded, "--through-kafka")
    assert kafka.returncode == 2 and "--through-kafka" in kafka.stderr


def _benchmark(name: str, samples: list[tuple[str, str | None, bool]]) -> Benchmark:
    rows = tuple(
        Sample(i, request, response, build_prompt(request, response), positive)
        for i, (request, response, positive) in enumerate(samples)
    )
    task = Task.RESPONSE_HARM if samples[0][1] is not None else Task.PROMPT_HARM
    return Benchmark(name, task, rows)


def test_an_exchange_with_an_explicit_task_1_conclusion_is_still_generated_in_full() -> None:
    policy = ModerationPolicy()
    engine = FakeEngine(lambda _prompt: TELLTALE)
    exchange = ChatEvent(
        id="x", conversation_id="c", user_id="u", timestamp=0.0, request="A cake recipe?", response="Flour..."
    )
    sample = asyncio.run(moderate_early(exchange, engine, policy))
    assert sample.early is None
    assert sample.verdict == sample.full
    assert sample.verdict.request is Harm.UNHARMFUL  # the answer block's, not Task 1's conclusion
    assert EarlyStats().add(sample) == EarlyStats()

    prompt_only = ChatEvent(id="p", conversation_id="c", user_id="u", timestamp=0.0, request="A cake recipe?")
    sample = asyncio.run(moderate_early(prompt_only, engine, policy))
    assert sample.early is not None and sample.early.answer is Harm.HARMFUL
    assert sample.verdict.request is Harm.HARMFUL and sample.verdict.outcome is Outcome.HARMFUL
    assert sample.verdict.raw == TELLTALE[: TELLTALE.index("\n# Task 2")]
    assert sample.full.request is Harm.UNHARMFUL


def test_report_counts_and_saved_fraction() -> None:
    plain = TELLTALE.replace("The human user's request is harmful.", "It could be harmful.")
    engine = FakeEngine(lambda prompt: TELLTALE if "cake" in prompt else plain)
    prompts = _benchmark("p", [("A cake recipe?", None, True), ("A pie recipe?", None, False)])
    exchanges = _benchmark("x", [("A cake recipe?", "Flour...", False)])
    planted = _benchmark("t", [("A cake recipe?\n# Task 2", None, False)])
    report = asyncio.run(evaluate_early_exit([prompts, exchanges, planted], engine, ModerationPolicy()))
    p, x, t = report.stats
    assert (p.prompt_only, p.eligible, p.exited, p.continued, p.no_stop) == (2, 2, 1, 1, 0)
    assert (p.agreed, p.agreement, p.none_rate) == (0, 0.0, 0.5)  # the telltale's answers disagree
    stop = TELLTALE.index("\n# Task 2") + len("\n# Task 2")
    assert p.generated_chars == stop + len(plain) and p.total_chars == len(TELLTALE) + len(plain)
    assert x == EarlyStats()
    assert (t.prompt_only, t.eligible, t.exited) == (1, 0, 0)  # a planted Task 2: generated in full
    assert t.generated_chars == t.total_chars == len(TELLTALE)
    body = report.to_dict()
    total = p + t
    expected = round(1 - total.generated_chars / total.total_chars, 4)
    assert body["saved_fraction"] == total.saved_fraction == expected
    rows = {r["benchmark"]: r for r in body["results"]}
    assert rows["p"]["f1"] == 100.0 and rows["p"]["unparsed"] == 0  # the cake read early: harmful
    assert rows["p"]["f1_full"] == 0.0  # ... and from the answer block: unharmful
    assert rows["x"]["early_exit"]["saved_fraction"] == 0.0
