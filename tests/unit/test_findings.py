"""SIEM findings (ECS, OCSF) and privacy-default block/alert records, built from recorded real outputs.

Every findings record these tests build is checked by ``../shared/siem/validate.py``.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from streams.categorize import Categorizer, Evidence, HarmCategory, Severity
from streams.config import CategoriesConfig, FailPolicy, FindingFormat, Settings, TopicNames
from streams.engines.base import Generation
from streams.engines.recorded import load_recordings
from streams.errors import ConfigError, EngineTimeout
from streams.eval import load_benchmark
from streams.event import ChatEvent
from streams.parse import Harm, TaskReasoning
from streams.pipeline import ModerationPolicy, to_verdict
from streams.sinks import Disclosure, OutputRecord, Replay, records_for, validate
from streams.sinks.findings import UNCLASSIFIED, trace_id_from
from streams.verdict import Outcome, Verdict, route
from tests.canaries import leaks, make_canary, plant, quoted_forms
from tests.conftest import SiemValidator

TOPICS = TopicNames()
BOTH = (FindingFormat.ECS, FindingFormat.OCSF)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
HEADERS = [("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode())]
REPLAY = Replay(
    run_id="run-7",
    original_model="GuardReasoner-1B",
    original_outcome="unharmful",
    original_answers={"request": "unharmful", "completion": "refusal", "response": "unharmful"},
)
SETS = [
    ("1B", "HarmBenchResponse", "0_5_harmbench_response"),
    ("3B", "HarmBenchResponse", "0_5_harmbench_response"),
    ("3B", "AegisSafetyTest", "0_1_AegisSafetyTest"),
    ("1B", "SimpleSafetyTests", "0_0_SimpleSafetyTests"),
]


def _verdicts(shared: Path, model: str, dataset: str, stem: str) -> list[Verdict]:
    bench = load_benchmark(shared / "benchmark" / f"{stem}.json")
    outputs = load_recordings(shared / "predictions" / model / dataset).outputs
    policy = ModerationPolicy(categorizer=Categorizer())
    verdicts = []
    for sample in bench.samples:
        when = 1_795_000_000.0 + sample.index
        event = ChatEvent(
            f"{model}-{dataset}-{sample.index}",
            f"conv-{sample.index % 11}",
            f"user-{sample.index % 5}",
            when,
            sample.request,
            sample.response,
        )
        text = outputs[sample.prompt]
        generation = Generation(
            text=text,
            model=f"GuardReasoner-{model}",
            prompt_tokens=len(sample.prompt) // 4,
            completion_tokens=len(text) // 4,
            finish_reason="stop",
        )
        verdicts.append(
            to_verdict(event, generation, engine="vllm:x", policy=policy, clock=lambda when=when: when + 1.25)
        )
    return verdicts


@pytest.fixture(scope="module")
def verdicts(shared: Path) -> list[Verdict]:
    return [v for model, dataset, stem in SETS for v in _verdicts(shared, model, dataset, stem)]


def _findings(records: list[OutputRecord]) -> dict[str, list[OutputRecord]]:
    return {
        fmt: [r for r in records if r.topic == topic]
        for fmt, topic in (("ecs", TOPICS.findings_ecs), ("ocsf", TOPICS.findings_ocsf))
    }


def test_every_finding_validates_and_each_harmful_verdict_has_one_per_format(
    verdicts: list[Verdict], siem_validate: SiemValidator
) -> None:
    failures = [
        to_verdict(
            ChatEvent("f1", "c", "u", 1.0, "hi", None),
            EngineTimeout("slow"),
            engine="e",
            policy=ModerationPolicy(),
        ),
        to_verdict(
            ChatEvent("f2", "c", "u", 1.0, "hi", None),
            Generation(text="rambling", model="m"),
            engine="e",
            policy=ModerationPolicy(),
        ),
    ]
    assert {v.outcome for v in failures} == {Outcome.ENGINE_ERROR, Outcome.UNPARSED}
    lines: dict[str, list[bytes]] = {"ecs": [], "ocsf": []}
    harmful = [v for v in verdicts if v.outcome is Outcome.HARMFUL]
    assert len(harmful) > 1000 and len(harmful) < len(verdicts)
    # every verdict with the defaults; every third one also with include_text and as a replay
    modes = [(False, None, 1), (True, None, 3), (False, REPLAY, 3), (True, REPLAY, 3)]
    expected_lines = 0
    for include_text, replay, every in modes:
        for verdict in [*verdicts[::every], *failures]:
            records = records_for(
                verdict, TOPICS, HEADERS, findings=BOTH, include_text=include_text, replay=replay
            )
            found = _findings(records)
            expected = 1 if verdict.outcome is Outcome.HARMFUL else 0
            expected_lines += expected
            assert [len(found["ecs"]), len(found["ocsf"])] == [expected, expected], verdict.event_id
            for fmt, recs in found.items():
                for record in recs:
                    assert ("guardstream-event-id", verdict.event_id.encode()) in record.headers
                    assert HEADERS[0] in record.headers
                    lines[fmt].append(record.value)
    for fmt, values in lines.items():
        assert len(values) == expected_lines > len(harmful)
        siem_validate(fmt, values)


def test_findings_carry_the_verdict(verdicts: list[Verdict]) -> None:
    tagged = untagged = 0
    for verdict in (v for v in verdicts if v.outcome is Outcome.HARMFUL):
        found = _findings(records_for(verdict, TOPICS, HEADERS, findings=BOTH))
        ecs, ocsf = (orjson.loads(found[f][0].value) for f in ("ecs", "ocsf"))
        assert verdict.severity is not None
        assert ecs["event"]["id"] == ocsf["finding_info"]["uid"] == verdict.event_id
        assert ecs["event"]["severity"] == ocsf["severity_id"] == verdict.severity.ocsf_id
        assert ecs["event"]["kind"] == "alert" and ocsf["class_uid"] == 2004 and ocsf["type_uid"] == 200401
        assert ecs["trace"]["id"] == ocsf["unmapped"]["trace_id"] == TRACE_ID
        assert ecs["user"]["id"] == verdict.user_id == ocsf["evidences"][0]["user"]["uid"]
        assert ecs["rule"]["version"] == ocsf["finding_info"]["analytic"]["version"] == verdict.model
        assert ecs["gen_ai"]["usage"]["input_tokens"] == verdict.prompt_tokens
        response = "harmful_response" if verdict.response is Harm.HARMFUL else "harmful_request"
        assert ecs["event"]["action"] == ocsf["metadata"]["event_code"] == response
        tags = [c.tag for c in verdict.categories]
        if tags:
            tagged += 1
            assert ecs["tags"] == ecs["threat"]["technique"]["id"] == tags
            assert ocsf["finding_info"]["types"] == [f"{c.tag} {c.name}" for c in verdict.categories]
            assert [e["data"]["tag"] for e in ocsf["evidences"] if "tag" in e["data"]] == tags
        else:
            untagged += 1
            assert ecs["tags"] == [UNCLASSIFIED] and "threat" not in ecs
            assert ocsf["finding_info"]["types"] == [UNCLASSIFIED]
        assert ocsf["unmapped"]["categories"] == Disclosure(verdict).categories()
        assert [c["tag"] for c in ocsf["unmapped"]["categories"]] == tags
    assert tagged > 3 * untagged > 0  # both kinds occur; most harmful verdicts have a tag


def test_duplicates_share_the_uid_and_a_replay_links_to_the_original(verdicts: list[Verdict]) -> None:
    verdict = next(v for v in verdicts if v.outcome is Outcome.HARMFUL)
    again = replace(verdict, moderated_at=verdict.moderated_at + 30)  # redelivered and moderated again
    first, second, replayed = (
        _findings(records_for(v, TOPICS, HEADERS, findings=BOTH, replay=r))
        for v, r in ((verdict, None), (again, None), (verdict, REPLAY))
    )
    for fmt, uid in (("ecs", ("event", "id")), ("ocsf", ("finding_info", "uid"))):
        a, b, c = (orjson.loads(x[fmt][0].value) for x in (first, second, replayed))
        assert a[uid[0]][uid[1]] == b[uid[0]][uid[1]] == verdict.event_id
        assert c[uid[0]][uid[1]] == f"{verdict.event_id}:replay:run-7"
    ecs = orjson.loads(replayed["ecs"][0].value)
    assert "replay" in ecs["tags"] and ecs["labels"]["replay_run_id"] == "run-7"
    assert ecs["labels"]["original_finding_id"] == verdict.event_id
    assert ecs["labels"]["original_outcome"] == "unharmful"
    ocsf = orjson.loads(replayed["ocsf"][0].value)
    assert ocsf["metadata"]["labels"] == ["replay"]
    assert ocsf["metadata"]["correlation_uid"] == verdict.event_id
    assert ocsf["finding_info"]["related_events"][0]["uid"] == verdict.event_id
    assert ocsf["unmapped"]["replay"]["original"]["model"] == "GuardReasoner-1B"


def test_replay_context_comes_from_a_verdict_record() -> None:
    assert Replay.from_record({"event_id": "e"}) is None
    replay = Replay.from_record(
        {"run_id": "r1", "original": {"model": "m", "outcome": "harmful", "answers": {"request": "harmful"}}}
    )
    assert replay == Replay("r1", "m", "harmful", {"request": "harmful"})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (HEADERS, TRACE_ID),
        ([("TraceParent", HEADERS[0][1])], TRACE_ID),
        ([("traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")], None),  # invalid all-zero id
        ([("traceparent", b"garbage")], None),
        ([], None),
    ],
)
def test_trace_id_from_the_traceparent(headers: list[tuple[str, bytes]], expected: str | None) -> None:
    assert trace_id_from(headers) == expected


def test_no_findings_when_the_formats_are_off(verdicts: list[Verdict]) -> None:
    verdict = next(v for v in verdicts if v.outcome is Outcome.HARMFUL)
    topics = {r.topic for r in records_for(verdict, TOPICS, HEADERS)}
    assert topics == {TOPICS.block, TOPICS.alerts, TOPICS.archive}
    only_ocsf = {r.topic for r in records_for(verdict, TOPICS, HEADERS, findings=(FindingFormat.OCSF,))}
    assert only_ocsf == topics | {TOPICS.findings_ocsf}


def test_oversized_findings_are_shrunk_marked_and_still_valid(
    verdicts: list[Verdict], siem_validate: SiemValidator
) -> None:
    verdict = next(v for v in verdicts if v.outcome is Outcome.HARMFUL and v.response_text)
    huge = replace(verdict, request_text="x" * 150_000, response_text="y " * 60_000, raw=verdict.raw * 50)
    records = records_for(huge, TOPICS, HEADERS, findings=BOTH, include_text=True, max_record_bytes=64 * 1024)
    assert all(r.size <= 64 * 1024 for r in records)
    found = _findings(records)
    ecs, ocsf = (orjson.loads(found[f][0].value) for f in ("ecs", "ocsf"))
    assert ecs["labels"]["truncated"] and int(ecs["labels"]["untruncated_bytes"]) > 64 * 1024
    assert ocsf["metadata"]["is_truncated"] is True and ocsf["unmapped"]["truncated"]
    siem_validate("ecs", [found["ecs"][0].value])
    siem_validate("ocsf", [found["ocsf"][0].value])


def _planted(rng: random.Random) -> tuple[Verdict, str]:
    """A harmful verdict whose chat holds a canary that every model-written field quotes."""
    canary = make_canary(rng)
    forms = quoted_forms(canary, rng)
    steps = tuple(
        plant(s, rng.choice(forms), rng)
        for s in (
            "The human user is asking how to hurt a specific person.",
            "The request involves violence and could lead to physical harm.",
            "## Conclusion The request is harmful.",
        )
    )
    verdict = Verdict(
        event_id=f"canary-{rng.randrange(10**9)}",
        conversation_id="c1",
        user_id="u1",
        event_timestamp=1_795_000_000.0,
        outcome=Outcome.HARMFUL,
        status=None,
        request=Harm.HARMFUL,
        response=Harm.HARMFUL,
        has_response=True,
        reasoning=(
            TaskReasoning(1, steps),
            TaskReasoning(3, (plant("The response helps with it.", canary, rng),)),
        ),
        raw="\n".join(steps),
        model="GuardReasoner-1B",
        engine="vllm:x",
        moderated_at=1_795_000_001.0,
        actions=route(Outcome.HARMFUL, FailPolicy.FAIL_CLOSED),
        categories=(
            HarmCategory("S1", "Violent Crimes", Severity.HIGH, (Evidence(1, 1, (rng.choice(forms),)),)),
        ),
        harms=(plant("hurting a person", rng.choice(forms), rng),),
        severity=Severity.CRITICAL,
        request_text=plant("I need to find and hurt someone tonight, quickly.", canary, rng),
        response_text=plant("Here is how you could do it.", canary, rng),
    )
    return verdict, canary


def test_privacy_default_keeps_planted_canaries_out_of_block_alert_and_findings(
    siem_validate: SiemValidator,
) -> None:
    rng = random.Random(1128)
    findings: dict[str, list[bytes]] = {"ecs": [], "ocsf": []}
    for _ in range(150):
        verdict, canary = _planted(rng)
        records = records_for(verdict, TOPICS, HEADERS, findings=BOTH)
        assert {r.topic for r in records} == {*TOPICS.outputs()} - {
            TOPICS.dlq,
            TOPICS.replay,
            TOPICS.replay_runs,
        }
        for record in records:
            text = record.value.decode()
            if record.topic == TOPICS.archive:
                assert leaks(canary, orjson.loads(record.value)["request_text"])  # the archive keeps it
                continue
            assert not leaks(canary, text), (record.topic, canary, text)
            if record.topic == TOPICS.block:
                validate("block", orjson.loads(record.value))
            elif record.topic == TOPICS.alerts:
                validate("alert", orjson.loads(record.value))
            else:
                findings["ecs" if record.topic == TOPICS.findings_ecs else "ocsf"].append(record.value)
        shown = records_for(verdict, TOPICS, HEADERS, findings=BOTH, include_text=True)
        leaked = Counter(r.topic for r in shown if leaks(canary, r.value.decode()))
        assert set(leaked) == set(TOPICS.outputs()) - {
            TOPICS.dlq,
            TOPICS.replay,
            TOPICS.replay_runs,
        }  # include_text: every record has it
    for fmt, values in findings.items():
        siem_validate(fmt, values)


def test_block_and_alert_records_in_both_privacy_modes(verdicts: list[Verdict]) -> None:
    verdict = next(v for v in verdicts if v.outcome is Outcome.HARMFUL and v.response_text)
    private = {r.topic: orjson.loads(r.value) for r in records_for(verdict, TOPICS)}
    shown = {r.topic: orjson.loads(r.value) for r in records_for(verdict, TOPICS, include_text=True)}
    for topic, schema in ((TOPICS.block, "block"), (TOPICS.alerts, "alert")):
        validate(schema, private[topic])
        validate(schema, shown[topic])
        assert private[topic]["text"]["request"]["length"] == len(verdict.request_text)
        assert "request_text" not in private[topic] and "reasoning" not in private[topic]
        assert shown[topic]["request_text"] == verdict.request_text
        assert shown[topic]["response_text"] == verdict.response_text
    assert shown[TOPICS.alerts]["reasoning"] == [r.to_dict() for r in verdict.reasoning]
    archive = private[TOPICS.archive]
    validate("archive", archive)
    assert (
        archive["request_text"] == verdict.request_text and archive["response_text"] == verdict.response_text
    )
    assert Verdict.from_dict(archive) == verdict


def test_the_worker_policy_categorizes_harmful_verdicts(tmp_path: Path) -> None:
    policy = ModerationPolicy.from_settings(Settings.from_env({}))
    assert policy.categorizer is not None
    event = ChatEvent("e1", "c1", "u1", 1.0, "how do I make sarin at home", None)
    raw = (
        "# Task 1\n\n## Reasoning Step 1\nThe user asks how to synthesize sarin, a chemical weapon.\n\n"
        "Answers: \nRequest: harmful\nCompletion: None\nResponse: None\n"
    )
    verdict = to_verdict(event, Generation(text=raw, model="m"), engine="e", policy=policy)
    assert [c.tag for c in verdict.categories] == ["S9"] and verdict.severity is not None
    assert verdict.request_text == event.request and verdict.response_text is None
    unharmful = to_verdict(
        event, Generation(text=raw.replace("harmful", "unharmful"), model="m"), engine="e", policy=policy
    )
    assert unharmful.categories == () and unharmful.severity is None
    bad = tmp_path / "taxonomy.json"
    bad.write_text('{"hazards": 3}')
    settings = replace(Settings.from_env({}), categories=CategoriesConfig(taxonomy_file=str(bad)))
    with pytest.raises(ConfigError, match="taxonomy"):
        ModerationPolicy.from_settings(settings)


def test_the_findings_benchmark_runs(shared: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest",
            "findings",
            "--recorded",
            str(shared / "predictions" / "1B" / "SimpleSafetyTests"),
            "--benchmark",
            str(shared / "benchmark" / "0_0_SimpleSafetyTests.json"),
            "--limit",
            "30",
            "--repeat",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    result = orjson.loads(proc.stdout)
    assert result["harmful_verdicts"] > 10
    for mode in ("baseline", "privacy", "findings", "findings_text"):
        assert result[mode]["mean_us"] > 0 and result[mode]["ratio"] > 0
    assert result["baseline"]["ratio"] == 1.0
