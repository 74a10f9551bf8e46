"""``guardstream eval --early-exit``: the F1 and the output saved by early exit for prompt-only events.

Every sample is moderated as usual (full generation, :func:`~streams.pipeline.moderate_one`);
then :func:`moderate_early` applies the early-exit contract of :mod:`streams.parse.early` to
the output. With greedy decoding, the text a generation stopped at a Task 2 heading returns is
exactly the full output's start, so this measures early exit exactly, on recordings
(``--recorded``) and live engines (``--engine``) alike:

- an event with a response, or whose request holds ``Task 2``
  (:func:`~streams.parse.early.early_exit_applies`), never exits early: its verdict is the
  full output's, nothing saved;
- an output that reaches a stop string with an explicit Task 1 conclusion gives the early
  verdict (request answer from the conclusion, raw output = the prefix); the characters after
  the stop string are not generated;
- otherwise (no stop string reached, or no explicit conclusion: the engine continues the same
  generation) the verdict is the full output's, nothing saved.

``saved_fraction`` is the share of output characters not generated over the prompt-only
samples (0.0 when there are none; one that early exit does not apply to counts as generated in
full). The report carries both F1s (early exit and full output), how often the rule answered,
and how often its answer agreed with the full output's final answer block.

When the engines implement early exit themselves (stop strings and continuation), a moderator
that calls them returns the same :class:`EarlySample`; :func:`evaluate_early_exit` takes it as
``moderator``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import astuple, dataclass, replace
from typing import Any

from streams.engines.base import GuardEngine
from streams.eval.benchmark import Benchmark
from streams.eval.run import check_prompts, check_verdicts
from streams.eval.score import EvalReport, score
from streams.event import ChatEvent
from streams.parse import Harm, ParseStatus, split_reasoning
from streams.parse.early import EarlyExit, early_exit_applies, replay_early_exit
from streams.pipeline import ModerationPolicy, moderate_one
from streams.verdict import Outcome, Verdict, route

__all__ = [
    "EarlyExitReport",
    "EarlySample",
    "EarlyStats",
    "Moderator",
    "early_verdict",
    "evaluate_early_exit",
    "moderate_early",
]

MODE = "replayed"  # early exit applied to full outputs (exact for greedy decoding)


@dataclass(frozen=True, slots=True)
class EarlySample:
    """One event moderated with early exit, and without it.

    ``early`` is None when early exit does not apply to the event (it has a response, its
    request holds ``Task 2``, the engine gave no output, or it was moderated in windows).
    """

    verdict: Verdict  # with early exit
    full: Verdict  # without
    early: EarlyExit | None

    @property
    def prompt_only(self) -> bool:
        return not self.full.has_response


Moderator = Callable[[ChatEvent, GuardEngine, ModerationPolicy], Awaitable[EarlySample]]


def early_verdict(full: Verdict, early: EarlyExit, policy: ModerationPolicy) -> Verdict:
    """The verdict an early exit publishes: the request answer from Task 1's conclusion, the
    prefix as the raw output and its reasoning; the other answers are not asked for."""
    if early.answer is None or early.prefix is None:
        return full
    outcome = Outcome.HARMFUL if early.answer is Harm.HARMFUL else Outcome.UNHARMFUL
    return replace(
        full,
        outcome=outcome,
        status=ParseStatus.OK,
        parse_reason=None,
        request=early.answer,
        completion=None,
        response=None,
        reasoning=split_reasoning(early.prefix),
        raw=early.prefix,
        invalid=(),
        completion_tokens=None,  # the recording's count is for the full output
        finish_reason="stop",
        actions=route(outcome, policy.fail_policy),
    )


async def moderate_early(event: ChatEvent, engine: GuardEngine, policy: ModerationPolicy) -> EarlySample:
    """Moderate ``event`` in full, then apply early exit to the output (see the module docstring)."""
    full = await moderate_one(event, engine, replace(policy, early_exit=False))  # the whole output
    applies = early_exit_applies(event.request, event.response)
    if not applies or full.outcome is Outcome.ENGINE_ERROR or full.windows:
        return EarlySample(full, full, None)
    early = replay_early_exit(full.raw, event.request)
    return EarlySample(early_verdict(full, early, policy), full, early)


@dataclass(frozen=True, slots=True)
class EarlyStats:
    """Early exit over the prompt-only samples of one benchmark (or all of them)."""

    prompt_only: int = 0  # samples without a response
    eligible: int = 0  # ... that early exit applies to (see streams.parse.early_exit_applies)
    exited: int = 0  # an explicit conclusion at the stop string: Tasks 2 and 3 not generated
    continued: int = 0  # a stop string, no explicit conclusion: the generation went on
    no_stop: int = 0  # the output never reached a stop string
    agreed: int = 0  # exited with the answer the full output's final block gives
    full_unset: int = 0  # exited where the full output gives no valid request answer
    generated_chars: int = 0
    total_chars: int = 0

    def add(self, sample: EarlySample) -> EarlyStats:
        early = sample.early
        if not sample.prompt_only:
            return self
        if early is None:  # generated in full
            chars = len(sample.full.raw)
            return self + EarlyStats(prompt_only=1, generated_chars=chars, total_chars=chars)
        exited = early.answer is not None
        return self + EarlyStats(
            prompt_only=1,
            eligible=1,
            exited=exited,
            continued=not exited and early.prefix is not None,
            no_stop=early.prefix is None,
            agreed=exited and early.answer is sample.full.request,
            full_unset=exited and sample.full.request is None,
            generated_chars=early.generated_chars,
            total_chars=early.total_chars,
        )

    def __add__(self, other: EarlyStats) -> EarlyStats:
        return EarlyStats(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @property
    def saved_fraction(self) -> float:
        saved = self.total_chars - self.generated_chars
        return round(saved / self.total_chars, 4) if self.total_chars else 0.0

    @property
    def none_rate(self) -> float | None:
        """Share of the outputs that reached a stop string where the rule gave no answer."""
        stopped = self.exited + self.continued
        return round(self.continued / stopped, 4) if stopped else None

    @property
    def agreement(self) -> float | None:
        """Share of early answers equal to the full output's final request answer, over the early
        answers whose full output gives one (``full_unset`` counts the others)."""
        compared = self.exited - self.full_unset
        return round(self.agreed / compared, 4) if compared else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_only": self.prompt_only,
            "eligible": self.eligible,
            "exited": self.exited,
            "continued": self.continued,
            "no_stop": self.no_stop,
            "none_rate": self.none_rate,
            "agreement": self.agreement,
            "full_unset": self.full_unset,
            "generated_chars": self.generated_chars,
            "total_chars": self.total_chars,
            "saved_fraction": self.saved_fraction,
        }


@dataclass(frozen=True, slots=True)
class EarlyExitReport:
    """F1 with early exit (``report``), with the full outputs (``full``), and what early exit saved."""

    report: EvalReport
    full: EvalReport
    stats: tuple[EarlyStats, ...]  # one per benchmark, in order
    mode: str = MODE

    @property
    def total(self) -> EarlyStats:
        return sum(self.stats, EarlyStats())

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for result, full, stats in zip(self.report.results, self.full.results, self.stats, strict=True):
            row = result.to_dict()
            row["f1_full"] = full.f1
            row["unparsed_full"] = full.unparsed
            row["early_exit"] = stats.to_dict()
            rows.append(row)
        total = self.total
        return {
            "results": rows,
            "weighted_f1": self.report.weighted_f1(),
            "weighted_f1_full": self.full.weighted_f1(),
            "saved_fraction": total.saved_fraction,
            "early_exit": {"mode": self.mode, **total.to_dict()},
        }

    def table(self) -> str:
        head = (
            f"{'benchmark':32} {'n':>5} {'F1 early':>9} {'F1 full':>8} {'unparsed':>8}"
            f" {'exited':>7} {'cont.':>6} {'no stop':>7} {'agree':>7} {'saved':>6}"
        )
        lines = [head, "-" * len(head)]
        for result, full, s in zip(self.report.results, self.full.results, self.stats, strict=True):
            agree = f"{s.agreement:.4f}" if s.agreement is not None else "-"
            lines.append(
                f"{result.benchmark:32} {result.n:5d} {result.f1:9.2f} {full.f1:8.2f} {result.unparsed:8d}"
                f" {s.exited:7d} {s.continued:6d} {s.no_stop:7d} {agree:>7} {s.saved_fraction:6.3f}"
            )
        total = self.total
        lines.append(
            f"saved_fraction {total.saved_fraction:.4f} over {total.prompt_only} prompt-only sample(s)"
            f" ({self.mode}: early exit applied to full outputs)"
        )
        return "\n".join(lines)


async def evaluate_early_exit(
    benchmarks: Sequence[Benchmark],
    engine: GuardEngine,
    policy: ModerationPolicy,
    *,
    moderator: Moderator = moderate_early,
    concurrency: int = 256,
) -> EarlyExitReport:
    for benchmark in benchmarks:
        check_prompts(benchmark)
    gate = asyncio.Semaphore(concurrency)

    async def one(benchmark: Benchmark, index: int) -> EarlySample:
        async with gate:
            return await moderator(benchmark.samples[index].to_event(benchmark.name), engine, policy)

    samples = await asyncio.gather(*(one(b, i) for b in benchmarks for i in range(len(b.samples))))
    by_id = {s.full.event_id: s for s in samples}
    check_verdicts(benchmarks, {k: s.full for k, s in by_id.items()})
    stats = []
    for benchmark in benchmarks:
        total = EarlyStats()
        for sample in benchmark.samples:
            total = total.add(by_id[sample.to_event(benchmark.name, timestamp=0).id])
        stats.append(total)
    return EarlyExitReport(
        report=score(benchmarks, {k: s.verdict for k, s in by_id.items()}),
        full=score(benchmarks, {k: s.full for k, s in by_id.items()}),
        stats=tuple(stats),
    )
