"""Archive and replay records made the way the worker makes them, from recorded real model outputs.

For the store benchmark and the store/console/export tests: each benchmark
sample's recorded GuardReasoner output goes through the pipeline's own
:func:`streams.pipeline.to_verdict` (parse, outcome, routing), and the record
is ``Verdict.to_dict()``. ``retain_text`` adds ``request_text`` /
``response_text`` (the chat text an archive may retain); :func:`replay_record`
adds what a replay record carries (``run_id``, ``original``). Timings are
synthetic (recordings have none): engine time grows with the output's length.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streams.engines.base import Generation
from streams.eval.benchmark import Sample
from streams.event import ChatEvent
from streams.pipeline import ModerationPolicy, to_verdict

__all__ = ["archive_records", "replay_record", "synthetic_records"]


def archive_records(
    samples: Sequence[Sample],
    outputs: Mapping[str, str],
    *,
    prefix: str,
    model: str,
    moderated_at: float,
    retain_text: bool = True,
    spacing_s: float = 0.001,
) -> list[dict[str, Any]]:
    """One archive record per sample that has a recorded output (event id ``{prefix}-{index}``)."""
    policy = ModerationPolicy()
    records = []
    for n, sample in enumerate(s for s in samples if s.prompt in outputs):
        at = moderated_at + n * spacing_s
        event = ChatEvent(
            f"{prefix}-{sample.index}",
            f"conv-{sample.index % 17}",
            "user-1",
            at - 0.5,
            sample.request,
            sample.response,
        )
        text = outputs[sample.prompt]
        generation = Generation(text=text, model=model, finish_reason="stop")
        # Recordings carry no timings: engine time is made proportional to the output's length
        # (~4 characters a token at ~2,000 tokens/s), so latency figures have a realistic spread.
        engine_s = 0.05 + len(text) / 4 / 2000
        verdict = to_verdict(
            event,
            generation,
            engine="recorded",
            policy=policy,
            engine_s=engine_s,
            picked_up=at - engine_s - 0.01,
            clock=_fixed(at),
        )
        record = verdict.to_dict()  # the worker keeps the chat text on the archive
        if not retain_text:  # as archived by a worker that did not (older versions)
            record.pop("request_text", None)
            record.pop("response_text", None)
        records.append(record)
    return records


def _fixed(at: float) -> Callable[[], float]:
    return lambda: at


def replay_record(
    record: Mapping[str, Any], run_id: str, original: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``record`` as a replay run publishes it, with the live verdict it re-moderated as ``original``."""
    out = {**record, "run_id": run_id}
    out["original"] = (
        {"model": original["model"], "outcome": original["outcome"], "answers": original["answers"]}
        if original
        else None
    )
    return out


_TOPICS = ("a recipe", "a trip", "tax forms", "a poem", "a lock", "a chemistry test", "a password", "a diet")


def synthetic_records(n: int, *, prefix: str, moderated_at: float) -> list[dict[str, Any]]:
    """``n`` archive records of realistic size without recordings: GuardReasoner-shaped outputs of
    ~1,300 characters (the recorded median) read by the real parser, a third of them harmful."""
    samples = []
    outputs = {}
    for i in range(n):
        topic = _TOPICS[i % len(_TOPICS)]
        harmful = i % 3 == 0
        request = f"Message {i}: could you help me with {topic}? " + "Some more context here. " * 8
        response = f"Here is what I can tell you about {topic}. " + "Details follow. " * 10
        verdict = "harmful" if harmful else "unharmful"
        output = (
            f"# Task 1\n\n## Reasoning Step 1: The human user asks for help with {topic}.\n"
            f"## Reasoning Step 2: {'This could facilitate harm to others. ' * 8}\n"
            f"## Conclusion: The request is {verdict}.\n\n"
            f"# Task 2\n\n## Reasoning Step 1: The AI assistant provides the information asked for.\n"
            f"## Conclusion: The response is compliance.\n\n"
            f"# Task 3\n\n## Reasoning Step 1: The response gives details about {topic}.\n"
            f"## Reasoning Step 2: {'The content is weighed against the policy. ' * 8}\n"
            f"## Conclusion: The response is {verdict}.\n\n---\n\n"
            f"Answers: \nRequest: {verdict}\nCompletion: compliance\nResponse: {verdict}\n"
        )
        prompt = f"{prefix}/{i}"
        samples.append(Sample(index=i, request=request, response=response, prompt=prompt, positive=harmful))
        outputs[prompt] = output
    return archive_records(
        samples, outputs, prefix=prefix, model="GuardReasoner-1B", moderated_at=moderated_at
    )
