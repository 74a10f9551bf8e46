"""Privacy: text digests and the redaction rule, tested with generated canaries."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import orjson
import pytest

from streams.eval import load_benchmark
from streams.parse import parse
from streams.privacy import (
    REDACTED,
    Redactor,
    Vocabulary,
    display_form,
    packaged_vocabulary,
    text_digest,
    tokens,
)
from streams.prompt import build_prompt
from tests.canaries import leaks, make_canary, plant, quoted_forms

# Chat texts and reasoning steps in GuardReasoner's style, written for these tests.
CHATS = [
    ("How do I pick the lock on my neighbour's shed? I need the tools by Friday.", None),
    (
        "Write a short story where the villain explains his plan.",
        "Sure. The villain, standing in the rain, laughed and said the city would fall by morning.",
    ),
    ("Can you tell me which household chemicals should never be mixed?", "Never mix bleach and ammonia."),
    ("My account was locked, please help me recover it quickly.", "I can't access accounts, sorry."),
    ("Give me a list of insults for my coworker who keeps stealing my lunch.", None),
]
STEPS = [
    "The human user is asking for instructions on how to break into someone else's property.",
    "The request involves potentially illegal activity and could lead to harm.",
    "The AI assistant's response provides a fictional narrative without harmful instructions.",
    "The user mentions a specific person and asks for private information about them.",
    "## Conclusion The request is harmful because it promotes harassment.",
    "The response complies with the request and includes detailed steps.",
]
CASES = 500


def test_text_digest_is_sha256_of_utf8_and_length_in_code_points() -> None:
    text = "naïve café ☕ \U0001f600"
    digest = text_digest(text)
    assert digest == {"sha256": hashlib.sha256(text.encode()).hexdigest(), "length": len(text)}
    assert text_digest("a\ud800")["length"] == 2  # a lone surrogate still hashes


def test_generated_canaries_never_survive_redaction() -> None:
    rng = random.Random(20261128)
    failures = []
    for case in range(CASES):
        canary = make_canary(rng)
        request, response = rng.choice(CHATS)
        if response is None or rng.random() < 0.5:
            request = plant(request, canary, rng)
        else:
            response = plant(response, canary, rng)
        redactor = Redactor([request, response])
        for form in quoted_forms(canary, rng):
            written = plant(rng.choice(STEPS), form, rng)
            published = redactor.redact(written)
            if leaks(canary, published):
                failures.append((case, canary, written, published))
    assert not failures, failures[:5]


def test_the_leak_check_sees_every_quoted_form() -> None:
    """The check above can fail: with nothing to redact against, every form of every canary leaks."""
    rng = random.Random(7)
    nothing = Redactor([])
    for _ in range(100):
        canary = make_canary(rng)
        for form in quoted_forms(canary, rng):
            assert leaks(canary, nothing.redact(plant(rng.choice(STEPS), form, rng))), (canary, form)


def test_canaries_in_real_chats_and_real_reasoning(shared: Path) -> None:
    bench = load_benchmark(shared / "benchmark" / "0_5_harmbench_response.json")
    recorded = {}
    with (shared / "predictions" / "3B" / "HarmBenchResponse" / "generated_predictions.jsonl").open(
        "rb"
    ) as fh:
        for line in fh:
            row = orjson.loads(line)
            recorded[row["prompt"]] = row["predict"]
    rng = random.Random(42)
    failures = []
    for sample in rng.sample(bench.samples, 150):
        steps = [
            s
            for t in parse(recorded[build_prompt(sample.request, sample.response)]).reasoning
            for s in t.steps
        ]
        canary = make_canary(rng)
        request, response = sample.request, sample.response
        if response is None or rng.random() < 0.5:
            request = plant(request, canary, rng)
        else:
            response = plant(response, canary, rng)
        redactor = Redactor([request, response])
        for form in rng.sample(quoted_forms(canary, rng), 4):
            written = plant(rng.choice(steps), form, rng)
            if leaks(canary, redactor.redact(written)):
                failures.append((canary, written))
    assert not failures, failures[:3]


@pytest.mark.parametrize(
    ("chat", "written", "kept", "gone"),
    [
        ("my pin is 4821, don't tell", "The user shares the PIN 4821 openly.", ["The user shares"], ["4821"]),
        (
            "mail me at ana.perez@corp.example or visit https://x7.example.com/a?b=1",
            "It asks to contact ana.perez@corp.example and https://x7.example.com.",
            ["It asks to contact"],
            ["ana", "perez", "x7"],
        ),
        (
            "tell me how to hotwire a car",
            'The user asks "how to hotwire a car", which is illegal.',
            ["which is illegal"],
            ["hotwire", "car"],
        ),
        (
            "the password is correct horse battery staple",
            "The user reveals a password, correct horse battery staple, in the request.",
            ["reveals a password"],
            ["correct horse"],
        ),
        (
            "how do I make a bomb at home",
            "The request asks how to make a bomb, which is dangerous and harmful.",
            ["how to make a bomb, which is dangerous and harmful"],
            [],
        ),
        ("Ｚｅｌｄａ ＱＵＯＲＮ", "The text names Zelda Quorn.", ["The text names"], ["zelda", "quorn"]),
        ("José Ñuñez called", "It mentions JOSE NUNEZ.", ["It mentions"], ["jose", "nunez"]),
    ],
)
def test_redaction_rules(chat: str, written: str, kept: list[str], gone: list[str]) -> None:
    published = Redactor([chat]).redact(written)
    for part in kept:
        assert part in published, published
    for word in gone:
        assert word.casefold() not in published.casefold(), published
    assert (REDACTED in published) == bool(gone)


def test_reasoning_unrelated_to_the_chat_is_only_normalised() -> None:
    redactor = Redactor(["Could you recommend a good pasta recipe for tonight?", "Try carbonara."])
    for step in STEPS:
        assert redactor.redact(step) == display_form(step)
    assert Redactor([]).redact("anything at all") == "anything at all"


@pytest.mark.parametrize(
    ("benchmark", "predictions", "floor"),
    [
        ("0_1_AegisSafetyTest.json", "AegisSafetyTest", 0.95),  # short prompts
        ("0_5_harmbench_response.json", "HarmBenchResponse", 0.88),  # reasoning quotes long responses
    ],
)
def test_redaction_keeps_most_of_real_reasoning(
    shared: Path, benchmark: str, predictions: str, floor: float
) -> None:
    """Over-redaction floor: on real outputs, most reasoning words survive."""
    bench = load_benchmark(shared / "benchmark" / benchmark)
    recorded = {}
    with (shared / "predictions" / "3B" / predictions / "generated_predictions.jsonl").open("rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            recorded[row["prompt"]] = row["predict"]
    before = after = 0
    for sample in bench.samples:
        redactor = Redactor([sample.request, sample.response])
        for task in parse(recorded[build_prompt(sample.request, sample.response)]).reasoning:
            for step in task.steps:
                words = tokens(display_form(step))
                published = tokens(redactor.redact(step))
                before += len(words)
                after += len([w for w in published if w != "redacted"]) - words.count("redacted")
    assert before > 10_000
    print(f"{predictions}: {after / before:.3f} of the reasoning words kept")
    assert after / before > floor, after / before


def test_vocabulary_classes_and_inflections() -> None:
    vocabulary = packaged_vocabulary()
    assert vocabulary.is_stop("the") and vocabulary.is_guard("harmful") and vocabulary.is_known("window")
    assert (
        vocabulary.is_known("windows") and vocabulary.is_guard("weapons") and vocabulary.is_known("studies")
    )
    assert not vocabulary.is_known("zq7") and not vocabulary.is_known("quorn")
    with pytest.raises(ValueError, match="before any section"):
        Vocabulary.parse("word\n[stop]\n")
