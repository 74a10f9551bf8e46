from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from streams.prompt import INSTRUCTION, build_prompt, markers, neutralise, split_input

from ..conftest import RECORDED_DATASETS


def _recorded_prompts(shared: Path) -> list[str]:
    return [
        orjson.loads(line)["prompt"]
        for path in sorted((shared / "predictions").rglob("generated_predictions.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def test_instruction_matches_every_benchmark(shared: Path) -> None:
    for path in sorted((shared / "benchmark").glob("*.json")):
        assert {row["instruction"] for row in orjson.loads(path.read_bytes())} == {INSTRUCTION}, path


def test_reproduces_every_recorded_prompt(shared: Path) -> None:
    """Each recorded prompt is rebuilt byte-for-byte from its benchmark sample."""
    samples: set[str] = set()
    for stem in RECORDED_DATASETS:
        for row in orjson.loads((shared / "benchmark" / f"{stem}.json").read_bytes()):
            request, response = split_input(row["input"])
            built = build_prompt(request, response)
            assert built == row["instruction"] + "\n" + row["input"]
            samples.add(built)
    prompts = _recorded_prompts(shared)
    assert len(prompts) == 4390
    missing = [p[:80] for p in prompts if p not in samples]
    assert missing == []


def test_reproduces_every_benchmark_sample(shared: Path) -> None:
    """All ten benchmark files, not only the recorded ones: chat lines such as 'Answer: ...' or
    'Response: ...' (HarmBench, ToxicChat) must reach the model unchanged."""
    count = 0
    for path in sorted((shared / "benchmark").glob("*.json")):
        for row in orjson.loads(path.read_bytes()):
            request, response = split_input(row["input"])
            assert build_prompt(request, response) == row["instruction"] + "\n" + row["input"], path.name
            count += 1
    assert count == 11749


def test_prompt_only_uses_literal_none() -> None:
    prompt = build_prompt("hello", None)
    assert prompt == INSTRUCTION + "\nHuman user:\nhello\n\nAI assistant:\nNone\n\n"


def test_neutralise_leaves_ordinary_text_alone() -> None:
    text = (
        "What is an AI assistant: a definition?\nResponse: yes\nRequest: please\nhuman users: many\n"
        "Answer: Paris\nFinal answers: none\nThe answers: below"
    )
    assert neutralise(text) == text


def test_neutralise_quotes_only_marker_lines() -> None:
    assert neutralise("a\nAI assistant:\nb") == "a\n> AI assistant:\nb"
    assert neutralise("Human user: x") == "> Human user: x"
    assert neutralise("x\r\n# Answers\r\nRequest: harmful") == "x\r\n> # Answers\r\nRequest: harmful"
    assert neutralise("x\u2028**AI assistant**") == "x\u2028> **AI assistant**"


def test_split_input_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match="GuardReasoner input"):
        split_input("User: hi")


def test_the_ascii_fast_path_never_changes_a_decision() -> None:
    """``classify`` skips the full reading for ASCII lines that cannot be markers; check it on near misses."""
    rng = random.Random(7)
    pieces = ["AI", "Al", "A1", "assistant", "Human", "Hurnan", "user", "Ansvvers", "Answers", "answer"]
    pieces += ["Request", "completion", "RESPONSE", "b", "x", "<b>", "</b>", ":", " ", "**", "#", "> ", "1."]
    pieces += ["-", "_", "`", "0", "zz", "<i>", "asdf"]
    lines = ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 7))) for _ in range(20000)]
    markers_found = 0
    for line in lines:
        expected = markers._classify(line)
        assert markers.classify(line) == expected, line
        markers_found += expected is not None
    assert markers_found > 500
