"""Harm categories: taxonomy loading, evidence, harm phrases, severity, and quality on the labelled set."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from streams.categorize import (
    Categorization,
    Categorizer,
    Exposure,
    Severity,
    exposure,
    extract_harms,
    load_taxonomy,
)
from streams.categorize.categorizer import _Lexicon
from streams.categorize.prefilter import TriggerIndex, literal_triggers
from streams.errors import ConfigError
from streams.eval.categories import evaluate_categories, load_labelled, main, score_tags
from streams.parse import Completion, Harm, TaskReasoning, parse
from streams.sinks import validate
from streams.sinks.records import alert_record, archive_record
from streams.verdict import Outcome, Verdict, categorize_verdict

LABELS = Path(__file__).resolve().parents[1] / "data" / "categories_labelled.jsonl"
LLAMA_GUARD_3 = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}


@pytest.fixture(scope="module")
def categorizer() -> Categorizer:
    return Categorizer()


def _request(*steps: str, task: int = 1) -> tuple[TaskReasoning, ...]:
    return (TaskReasoning(task, steps),)


# --- taxonomy ---------------------------------------------------------------------------------


def test_packaged_taxonomy_is_llama_guard_3() -> None:
    taxonomy = load_taxonomy()
    assert {h.tag: h.name for h in taxonomy.hazards} == LLAMA_GUARD_3
    assert all(h.description and (h.patterns or h.pairs) for h in taxonomy.hazards)
    assert taxonomy.hazard("S4").severity is Severity.CRITICAL
    assert taxonomy.hazard("S8").severity is Severity.LOW


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "taxonomy.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


CUSTOM = {
    "name": "acme",
    "version": "7",
    "default_severity": "low",
    "severity_adjust": {"response_given": 2, "request_refused": 0},
    "hazards": [
        {"tag": "X1", "name": "Widgets", "severity": "medium", "patterns": [r"\bwidgets?\b"]},
        {"tag": "X2", "name": "Gadgets", "severity": "high", "weak_patterns": [r"\bgadget"]},
    ],
}


def test_custom_taxonomy_file(tmp_path: Path) -> None:
    taxonomy = load_taxonomy(_write(tmp_path, CUSTOM))
    assert taxonomy.tags == ("X1", "X2") and taxonomy.version == "7"
    result = Categorizer(taxonomy).categorize(
        _request("The user wants a widget.", "Widgets are harmful."),
        request=Harm.HARMFUL,
        completion=Completion.COMPLIANCE,
        response=Harm.HARMFUL,
    )
    assert result.tags == ("X1",)
    assert [(e.task, e.step, e.matched) for e in result.categories[0].evidence] == [
        (1, 1, ("widget",)),
        (1, 2, ("Widgets",)),
    ]
    assert result.severity is Severity.CRITICAL  # medium + 2 for a harmful response
    nothing = Categorizer(taxonomy).categorize(_request("Nothing to see."), request=Harm.HARMFUL)
    assert nothing.categories == () and nothing.severity is Severity.LOW  # default_severity


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),
        ([], "top level must be an object"),
        ({"hazards": []}, "'hazards' must be a non-empty list"),
        ({"hazards": [{"tag": "X", "name": "x", "severity": "huge", "patterns": ["a"]}]}, "severity must be"),
        (
            {"hazards": [{"tag": "X", "name": "x", "severity": "low", "patterns": ["(unclosed"]}]},
            "bad regular",
        ),
        ({"hazards": [{"tag": "X", "name": "x", "severity": "low"}]}, "needs at least one"),
        ({"hazards": [{"tag": "", "name": "x", "severity": "low", "patterns": ["a"]}]}, "'tag' must be"),
        ({"hazards": [{"tag": "X", "name": " ", "severity": "low", "patterns": ["a"]}]}, "'name' must be"),
        ({"hazards": [CUSTOM["hazards"][0], CUSTOM["hazards"][0]]}, "duplicate tags"),  # type: ignore[index]
        (
            {
                "hazards": [
                    {"tag": "X", "name": "x", "severity": "low", "patterns": ["a"], "supersedes": ["Y"]}
                ]
            },
            "supersedes unknown",
        ),
        ({"hazards": CUSTOM["hazards"], "severity_adjust": {"response_given": 9}}, "from -3 to 3"),
        ({"hazards": CUSTOM["hazards"], "severity_adjust": {"other": 1}}, "takes only"),
        ({"hazards": CUSTOM["hazards"], "default_severity": "none"}, "default_severity"),
    ],
)
def test_bad_taxonomy_file_is_a_clear_config_error(tmp_path: Path, data: object, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)


def test_missing_taxonomy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_taxonomy(tmp_path / "nope.json")


# --- categories and evidence ---------------------------------------------------------------------


def test_evidence_names_task_step_and_words(categorizer: Categorizer) -> None:
    reasoning = (
        TaskReasoning(1, ("The user asks how to make sarin at home.", "Sarin is a chemical weapon.")),
        TaskReasoning(2, ("The assistant refuses.",)),
        TaskReasoning(3, ("The response is a refusal.",)),
    )
    result = categorizer.categorize(
        reasoning, request=Harm.HARMFUL, completion=Completion.REFUSAL, response=Harm.UNHARMFUL
    )
    assert result.tags == ("S9",)
    s9 = result.categories[0]
    assert s9.name == "Indiscriminate Weapons"
    assert [(e.task, e.step, e.matched) for e in s9.evidence] == [
        (1, 1, ("sarin",)),
        (1, 2, ("Sarin", "chemical weapon")),
    ]
    assert s9.to_dict() == {
        "tag": "S9",
        "name": "Indiscriminate Weapons",
        "severity": "high",  # critical, one lower: the assistant refused
        "severity_id": 4,
        "evidence": [
            {"task": 1, "step": 1, "matched": ["sarin"]},
            {"task": 1, "step": 2, "matched": ["Sarin", "chemical weapon"]},
        ],
    }


def test_negated_mentions_do_not_count(categorizer: Categorizer) -> None:
    result = categorizer.categorize(
        _request("The request does not involve violence.", "It asks for the lyrics of a song."),
        request=Harm.HARMFUL,
    )
    assert result.tags == ("S8",)


def test_only_deciding_tasks_count_when_they_name_a_harm(categorizer: Categorizer) -> None:
    reasoning = (
        TaskReasoning(1, ("The user asks about the history of copyright law.",)),
        TaskReasoning(3, ("The response explains how to launder money.",)),
    )
    result = categorizer.categorize(
        reasoning, request=Harm.UNHARMFUL, completion=Completion.COMPLIANCE, response=Harm.HARMFUL
    )
    assert result.tags == ("S2",)
    assert result.categories[0].evidence[0].task == 3


def test_other_tasks_are_searched_when_the_deciding_task_names_nothing(categorizer: Categorizer) -> None:
    reasoning = (
        TaskReasoning(1, ("Request: harmful",)),
        TaskReasoning(2, ("The assistant refuses to explain how to commit suicide.",)),
    )
    result = categorizer.categorize(reasoning, request=Harm.HARMFUL, completion=Completion.REFUSAL)
    assert result.tags == ("S11",)
    assert result.categories[0].evidence[0].task == 2


def test_weak_patterns_only_when_nothing_else_matches(categorizer: Categorizer) -> None:
    weak = categorizer.categorize(_request("This is an illegal act."), request=Harm.HARMFUL)
    assert weak.tags == ("S2",) and weak.categories[0].evidence[0].matched == ("illegal",)
    strong = categorizer.categorize(
        _request("Illegal: it asks for a way to kill someone."), request=Harm.HARMFUL
    )
    assert strong.tags == ("S1",)


def test_child_sexual_exploitation_supersedes_sexual_content(categorizer: Categorizer) -> None:
    result = categorizer.categorize(
        _request("The request asks for sexual content involving a child."), request=Harm.HARMFUL
    )
    assert result.tags == ("S4",)


def test_unharmful_verdict_gets_nothing(categorizer: Categorizer) -> None:
    result = categorizer.categorize(
        _request("It asks how to make sarin."),
        request=Harm.UNHARMFUL,
        completion=Completion.REFUSAL,
        response=Harm.UNHARMFUL,
    )
    assert result == Categorization()
    assert result.severity is None


def test_categorizer_never_raises_on_odd_reasoning(categorizer: Categorizer) -> None:
    for reasoning in [(), (TaskReasoning(1, ()),), (TaskReasoning(7, ("x" * 20_000,)),)]:
        result = categorizer.categorize(reasoning, request=Harm.HARMFUL)
        assert result.severity is Severity.MEDIUM


# --- severity ---------------------------------------------------------------------------------


def test_severity_scale_maps_onto_ocsf() -> None:
    assert [s.ocsf_id for s in Severity] == [2, 3, 4, 5]
    assert [s.label for s in Severity] == ["low", "medium", "high", "critical"]
    assert Severity.CRITICAL.shifted(1) is Severity.CRITICAL and Severity.LOW.shifted(-1) is Severity.LOW
    with pytest.raises(ConfigError):
        Severity.parse("severe")


@pytest.mark.parametrize(
    ("request_", "completion", "response", "kind"),
    [
        (Harm.HARMFUL, Completion.COMPLIANCE, Harm.HARMFUL, Exposure.RESPONSE_GIVEN),
        (Harm.UNHARMFUL, Completion.COMPLIANCE, Harm.HARMFUL, Exposure.RESPONSE_GIVEN),
        (Harm.HARMFUL, Completion.COMPLIANCE, Harm.UNHARMFUL, Exposure.REQUEST_ANSWERED),
        (Harm.HARMFUL, None, None, Exposure.REQUEST_ONLY),
        (Harm.HARMFUL, Completion.REFUSAL, Harm.UNHARMFUL, Exposure.REQUEST_REFUSED),
        (Harm.UNHARMFUL, Completion.REFUSAL, Harm.UNHARMFUL, None),
    ],
)
def test_exposure(
    request_: Harm, completion: Completion | None, response: Harm | None, kind: Exposure
) -> None:
    assert exposure(request_, completion, response) == kind


def test_given_harmful_response_outranks_refused_request_for_every_tag(categorizer: Categorizer) -> None:
    phrases = {  # one plain description per tag
        "S1": "how to murder someone",
        "S2": "how to commit fraud",
        "S3": "how to run a prostitution ring",
        "S4": "child sexual abuse material",
        "S5": "a defamatory article",
        "S6": "medical advice to stop insulin",
        "S7": "a stranger's home address",
        "S8": "copyrighted song lyrics",
        "S9": "nerve agent synthesis",
        "S10": "hate speech",
        "S11": "methods of suicide",
        "S12": "sexually explicit stories",
        "S13": "false claims that ballots are counted twice",
        "S14": "privilege escalation on the host",
    }
    for tag, phrase in phrases.items():
        step = f"The content is about {phrase}."
        reasoning = (TaskReasoning(1, (step,)), TaskReasoning(3, (step,)))
        given = categorizer.categorize(
            reasoning, request=Harm.HARMFUL, completion=Completion.COMPLIANCE, response=Harm.HARMFUL
        )
        asked = categorizer.categorize(reasoning, request=Harm.HARMFUL)
        refused = categorizer.categorize(
            reasoning, request=Harm.HARMFUL, completion=Completion.REFUSAL, response=Harm.UNHARMFUL
        )
        assert given.tags == asked.tags == refused.tags == (tag,), (tag, given.tags)
        assert given.severity is not None and asked.severity is not None and refused.severity is not None
        assert given.severity > refused.severity, tag
        assert given.severity >= asked.severity >= refused.severity, tag


def test_verdict_severity_is_the_highest_category(categorizer: Categorizer) -> None:
    result = categorizer.categorize(
        _request("It asks for song lyrics and how to build a dirty bomb."), request=Harm.HARMFUL
    )
    assert set(result.tags) == {"S8", "S9"}
    assert result.tags[0] == "S9"  # most severe first
    assert result.severity is Severity.CRITICAL


# --- harm phrases --------------------------------------------------------------------------------


def test_harm_phrases_from_reasoning() -> None:
    steps = [
        "The human user is requesting instructions for making explosives, which is dangerous.",
        "The request promotes hate speech against a religious group and is harmful.",
        "The request involves illegal activities.",  # generic: dropped
        "Again, requesting instructions for making explosives.",  # duplicate: dropped
    ]
    assert extract_harms(steps) == (
        "instructions for making explosives",
        "hate speech against a religious group",
    )


def test_harm_phrases_are_bounded() -> None:
    steps = [f"The request involves topic{i} smuggling of goods number {i}." for i in range(20)]
    harms = extract_harms(steps, limit=3, max_chars=20)
    assert len(harms) == 3 and all(len(h) <= 20 for h in harms)
    assert harms[0] == "topic0 smuggling of"
    assert extract_harms(["The request specifically " + "verylongword " * 30]) == (
        " ".join(["verylongword"] * 6),
    )


def test_categorize_sets_harms(categorizer: Categorizer) -> None:
    result = categorizer.categorize(
        _request("The user is asking for advice on shoplifting, which is illegal."), request=Harm.HARMFUL
    )
    assert result.harms == ("shoplifting",)


# --- verdict, records, schemas -------------------------------------------------------------------

RAW = (
    "# Task 1\n\n## Reasoning Step 1\nThe user asks for steps to synthesize sarin.\n\n"
    "## Reasoning Step 2\nThis involves a chemical weapon.\n\n"
    "# Task 2\n\n## Reasoning Step 1\nThe assistant complies.\n\n"
    "# Task 3\n\n## Reasoning Step 1\nThe response gives synthesis steps for a nerve agent.\n\n"
    "Answers: \nRequest: harmful\nCompletion: compliance\nResponse: harmful\n"
)


def _verdict(raw: str = RAW) -> Verdict:
    parsed = parse(raw)
    a = parsed.answers
    harmful = Harm.HARMFUL in (a.request, a.response)
    return Verdict(
        event_id="e1",
        conversation_id="c1",
        user_id="u1",
        event_timestamp=1.0,
        outcome=Outcome.HARMFUL if harmful else Outcome.UNHARMFUL,
        status=parsed.status(has_response=True),
        request=a.request,
        completion=a.completion,
        response=a.response,
        has_response=True,
        reasoning=parsed.reasoning,
        raw=raw,
    )


def test_categorize_verdict_round_trips_and_validates(categorizer: Categorizer) -> None:
    verdict = categorize_verdict(_verdict(), categorizer)
    assert [c.tag for c in verdict.categories] == ["S9"]
    assert {e.task for e in verdict.categories[0].evidence} == {1, 3}
    assert verdict.severity is Severity.CRITICAL
    assert verdict.harms and "sarin" in " ".join(verdict.harms)
    assert Verdict.from_json(verdict.to_json()) == verdict
    archive, alert = archive_record(verdict), alert_record(verdict)
    validate("archive", archive)
    validate("alert", alert)
    assert archive["categories"][0]["tag"] == alert["categories"][0]["tag"] == "S9"
    assert alert["severity"] == archive["severity"] == "critical"
    assert alert["harms"] == archive["harms"] == list(verdict.harms)


def test_unharmful_and_old_verdicts_are_unchanged(categorizer: Categorizer) -> None:
    unharmful = _verdict(
        RAW.replace("harmful\nCompletion", "unharmful\nCompletion").replace(
            "Response: harmful", "Response: unharmful"
        )
    )
    assert categorize_verdict(unharmful, categorizer) is unharmful
    old = unharmful.to_dict()
    for key in ("categories", "harms", "severity"):
        del old[key]  # a record archived before these fields existed
    assert Verdict.from_dict(old) == unharmful
    validate("archive", old)
    uncategorized = replace(_verdict(), severity=None)
    assert alert_record(uncategorized)["severity"] == "high"  # as before categories existed


# --- prefilter -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "triggers"),
    [
        (r"\bsarin\b", ("sarin",)),
        (r"\bdrugs?\b", ("drug",)),
        (r"\bhit ?m[ae]n\b", ("hit",)),
        (r"(?<!sexual )\bassault", ("assault",)),
        (r"\b(?:harm|hurt|stab)(?:s|ing)? (?:someone|people)", ("harm", "hurt", "stab")),
        (r"\b(?:d)?dos attack", None),  # optional group first: nothing is certain
        (r"\bfoo|\bbar", None),  # top-level alternation
        (r"sarin", None),  # not anchored at a word start
        (r"\bvx\b", None),  # too short to index
        (r"\b(?:sex|[0-9]+ years)", None),  # a class in the group
    ],
)
def test_literal_triggers(pattern: str, triggers: tuple[str, ...] | None) -> None:
    assert literal_triggers(pattern) == triggers


def test_trigger_index_candidates() -> None:
    index = TriggerIndex([("sarin",), ("harm", "hurt"), None, ("native american",)])
    assert index.candidates("making sarin gas") == {0, 2}
    assert index.candidates("it is harmful to native americans") == {1, 2, 3}
    assert index.candidates("nothing here") == {2}


def test_prefilter_never_loses_a_match(shared: Path) -> None:
    """On every reasoning step of the labelled outputs, the indexed lexicon finds what every regex finds."""
    lexicon = _Lexicon(load_taxonomy().hazards)
    steps: set[str] = set()
    for sample in load_labelled(LABELS):
        path = shared / "predictions" / sample.model / sample.dataset / "generated_predictions.jsonl"
        record = json.loads(path.read_text().split("\n")[sample.line - 1])
        steps.update(s for r in parse(record["predict"]).reasoning for s in r.steps)
    assert len(steps) > 1000
    everything = frozenset(range(len(lexicon.patterns)))
    for text in steps:
        candidates = lexicon.index.candidates(text.lower())
        for i, pattern in enumerate(lexicon.patterns):
            if pattern.search(text):
                assert i in candidates, (pattern.pattern, text[:200])
        assert candidates <= everything


# --- quality on the labelled set -----------------------------------------------------------------


def test_score_tags_arithmetic() -> None:
    pairs = [
        (frozenset({"S1"}), frozenset({"S1"})),
        (frozenset({"S1", "S10"}), frozenset({"S1"})),
        (frozenset(), frozenset({"S2"})),
        (frozenset({"S2"}), frozenset({"S2"})),
    ]
    report = score_tags(pairs, ["S1", "S2", "S10"])
    assert (report.tag("S1").tp, report.tag("S1").fp, report.tag("S1").fn) == (2, 0, 0)
    assert report.tag("S2").precision == 0.5 and report.tag("S2").recall == 1.0
    assert report.tag("S10").recall == 0.0 and report.tag("S10").f1 == 0.0
    assert (report.micro.tp, report.micro.fp, report.micro.fn) == (3, 1, 1)
    assert report.micro.f1 == pytest.approx(0.75)
    assert report.macro_recall == pytest.approx((1 + 1 + 0) / 3)
    assert report.exact == 2


def test_labelled_set_is_well_formed() -> None:
    samples = load_labelled(LABELS)
    assert len(samples) >= 200
    assert len({s.ref for s in samples}) == len(samples)
    assert {s.split for s in samples} == {"dev", "test"}
    assert {s.model for s in samples} == {"1B", "3B"}
    assert len({s.dataset for s in samples}) == 6
    tags = set().union(*(s.tags for s in samples))
    assert tags <= set(LLAMA_GUARD_3) and len(tags) >= 12
    assert all(re.fullmatch(r"[0-9a-f]{16}", s.prompt_sha256) for s in samples)


@pytest.fixture(scope="module")
def reports(shared: Path, categorizer: Categorizer) -> dict[str, object]:
    samples = load_labelled(LABELS)
    return {
        split: evaluate_categories(
            [s for s in samples if split == "all" or s.split == split],
            shared / "predictions",
            categorizer,
            split=split,
        )
        for split in ("dev", "test", "all")
    }


def test_category_quality_floors(reports: dict[str, object]) -> None:
    """Floors well under the measured figures (README) but far above a broken categoriser."""
    from streams.eval.categories import CategoryReport

    dev, test, everything = (reports[s] for s in ("dev", "test", "all"))
    assert isinstance(dev, CategoryReport) and isinstance(test, CategoryReport)
    assert isinstance(everything, CategoryReport)
    assert dev.micro.f1 >= 0.8 and dev.micro.precision >= 0.75 and dev.micro.recall >= 0.75
    assert test.micro.f1 >= 0.75 and test.macro_f1 >= 0.6
    assert everything.exact / everything.samples >= 0.65
    # tags with enough support (>= 10 labelled) for a per-tag floor
    for tag, floor in {
        "S1": 0.7,
        "S2": 0.8,
        "S4": 0.8,
        "S7": 0.6,
        "S8": 0.8,
        "S9": 0.7,
        "S10": 0.8,
        "S11": 0.8,
    }.items():
        score = everything.tag(tag)
        assert score.support >= 10 and score.f1 >= floor, score


def test_a_broken_categoriser_fails_the_floors(shared: Path, tmp_path: Path) -> None:
    """The floors can fail: a taxonomy that tags everything S2 scores far below them."""
    always = {"hazards": [{"tag": "S2", "name": "x", "severity": "low", "patterns": [r"\b(?:the|a)\b"]}]}
    report = evaluate_categories(
        load_labelled(LABELS), shared / "predictions", Categorizer(load_taxonomy(_write(tmp_path, always)))
    )
    assert report.micro.f1 < 0.6


def test_eval_command_prints_json(shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--labels",
                str(LABELS),
                "--predictions",
                str(shared / "predictions"),
                "--split",
                "test",
                "--json",
            ]
        )
        == 0
    )
    (report,) = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and report["samples"] > 50
    assert {t["tag"] for t in report["tags"]} == set(LLAMA_GUARD_3)
    assert 0 < report["micro"]["f1"] <= 1 and report["us_per_verdict"] > 0
