"""Harm-category quality: precision / recall / F1 per tag on a hand-labelled set.

    python -m streams.eval.categories [--split dev|test|all] [--json]
        [--labels tests/data/categories_labelled.jsonl] [--predictions ../shared/guardreasoner/predictions]

The labelled set holds references, not text (see ``tests/data/categories_labelled.md``):
each line names a recorded output (model, dataset, 1-based line) and the SHA-256
prefix of its prompt, so the texts are read from ``--predictions`` and a changed
file is an error, never a silent mis-score. Each output is parsed, categorised,
and its predicted tags compared with the labelled ones (multi-label):
per tag TP/FP/FN, micro (pooled) and macro (mean over tags with support)
precision, recall and F1, plus the time categorisation takes per verdict.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.categorize import Categorizer
from streams.errors import StreamsError
from streams.parse import parse

__all__ = [
    "CategoryReport",
    "LabelledSample",
    "TagScore",
    "evaluate_categories",
    "load_labelled",
    "main",
    "score_tags",
]

DEFAULT_LABELS = Path("tests/data/categories_labelled.jsonl")
DEFAULT_PREDICTIONS = Path("../shared/guardreasoner/predictions")


class LabelError(StreamsError):
    """The labelled set is malformed or no longer matches the recorded outputs."""


@dataclass(frozen=True, slots=True)
class LabelledSample:
    model: str
    dataset: str
    line: int
    prompt_sha256: str
    tags: frozenset[str]
    split: str

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.dataset}:{self.line}"


@dataclass(frozen=True, slots=True)
class TagScore:
    tag: str
    support: int  # labelled positives
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "support": self.support,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 3),
            "recall": round(self.recall, 3),
            "f1": round(self.f1, 3),
        }


@dataclass(frozen=True, slots=True)
class CategoryReport:
    split: str
    samples: int
    tags: tuple[TagScore, ...]
    micro: TagScore
    exact: int  # samples whose predicted tag set equals the labelled one
    us_per_verdict: float = 0.0  # mean categorisation time
    us_p99: float = 0.0

    @property
    def macro_precision(self) -> float:
        return _mean([t.precision for t in self.tags if t.support])

    @property
    def macro_recall(self) -> float:
        return _mean([t.recall for t in self.tags if t.support])

    @property
    def macro_f1(self) -> float:
        return _mean([t.f1 for t in self.tags if t.support])

    def tag(self, tag: str) -> TagScore:
        return next(t for t in self.tags if t.tag == tag)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "samples": self.samples,
            "exact_match": round(self.exact / self.samples, 3) if self.samples else 0.0,
            "micro": {k: v for k, v in self.micro.to_dict().items() if k != "tag"},
            "macro": {
                "precision": round(self.macro_precision, 3),
                "recall": round(self.macro_recall, 3),
                "f1": round(self.macro_f1, 3),
            },
            "tags": [t.to_dict() for t in self.tags],
            "us_per_verdict": round(self.us_per_verdict, 1),
            "us_p99": round(self.us_p99, 1),
        }

    def to_markdown(self) -> str:
        rows = [
            f"| {t.tag} | {t.support} | {t.tp} | {t.fp} | {t.fn} "
            f"| {t.precision:.2f} | {t.recall:.2f} | {t.f1:.2f} |"
            for t in self.tags
        ]
        m = self.micro
        return "\n".join(
            [
                f"split `{self.split}`: {self.samples} verdicts, exact tag-set match "
                f"{self.exact / max(self.samples, 1):.2f}, {self.us_per_verdict:.0f} µs per verdict "
                f"(p99 {self.us_p99:.0f} µs)",
                "",
                "| tag | support | TP | FP | FN | precision | recall | F1 |",
                "|---|---|---|---|---|---|---|---|",
                *rows,
                f"| **micro** | {m.support} | {m.tp} | {m.fp} | {m.fn} | {m.precision:.2f} | {m.recall:.2f} "
                f"| {m.f1:.2f} |",
                f"| **macro** (tags with support) | | | | | {self.macro_precision:.2f} | "
                f"{self.macro_recall:.2f} | {self.macro_f1:.2f} |",
            ]
        )


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def load_labelled(path: Path) -> list[LabelledSample]:
    samples = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            samples.append(
                LabelledSample(
                    model=row["model"],
                    dataset=row["dataset"],
                    line=int(row["line"]),
                    prompt_sha256=row["prompt_sha256"],
                    tags=frozenset(row["tags"]),
                    split=row["split"],
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LabelError(f"{path}:{number}: bad label line ({exc})") from exc
    return samples


def _recorded(samples: Sequence[LabelledSample], predictions: Path) -> list[str]:
    """The raw model output of each sample, checked against its prompt hash."""
    by_file: dict[Path, list[str]] = {}
    outputs = []
    for sample in samples:
        file = predictions / sample.model / sample.dataset / "generated_predictions.jsonl"
        if file not in by_file:
            by_file[file] = file.read_text("utf-8").split("\n")  # not splitlines: texts hold U+2028
        lines = by_file[file]
        if not 1 <= sample.line <= len(lines):
            raise LabelError(f"{sample.ref}: no such line in {file}")
        record = json.loads(lines[sample.line - 1])
        digest = hashlib.sha256(record["prompt"].encode()).hexdigest()
        if not digest.startswith(sample.prompt_sha256):
            raise LabelError(f"{sample.ref}: prompt hash differs from the label's (the data file changed)")
        outputs.append(record["predict"])
    return outputs


def score_tags(
    pairs: Sequence[tuple[frozenset[str], frozenset[str]]], tags: Sequence[str], *, split: str = ""
) -> CategoryReport:
    """``pairs``: (labelled tags, predicted tags) per verdict."""
    scores = []
    for tag in tags:
        tp = sum(1 for gold, pred in pairs if tag in gold and tag in pred)
        fp = sum(1 for gold, pred in pairs if tag not in gold and tag in pred)
        fn = sum(1 for gold, pred in pairs if tag in gold and tag not in pred)
        scores.append(TagScore(tag, tp + fn, tp, fp, fn))
    micro = TagScore(
        "micro",
        sum(s.support for s in scores),
        sum(s.tp for s in scores),
        sum(s.fp for s in scores),
        sum(s.fn for s in scores),
    )
    exact = sum(1 for gold, pred in pairs if gold == pred)
    return CategoryReport(split=split, samples=len(pairs), tags=tuple(scores), micro=micro, exact=exact)


def evaluate_categories(
    samples: Sequence[LabelledSample], predictions: Path, categorizer: Categorizer, *, split: str = ""
) -> CategoryReport:
    """Parse and categorise every sample's recorded output; score against its labels."""
    outputs = _recorded(samples, predictions)
    pairs = []
    times = []
    for sample, raw in zip(samples, outputs, strict=True):
        parsed = parse(raw)
        a = parsed.answers
        start = time.perf_counter()
        result = categorizer.categorize(
            parsed.reasoning, request=a.request, completion=a.completion, response=a.response
        )
        times.append((time.perf_counter() - start) * 1e6)
        pairs.append((sample.tags, frozenset(result.tags)))
    report = score_tags(pairs, categorizer.taxonomy.tags, split=split)
    p99 = statistics.quantiles(times, n=100)[98] if len(times) >= 2 else (times[0] if times else 0.0)
    return CategoryReport(
        split=report.split,
        samples=report.samples,
        tags=report.tags,
        micro=report.micro,
        exact=report.exact,
        us_per_verdict=_mean(times),
        us_p99=p99,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.eval.categories", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--predictions", type=Path, default=DEFAULT_PREDICTIONS)
    parser.add_argument("--split", choices=["dev", "test", "all"], action="append")
    parser.add_argument(
        "--taxonomy", type=Path, default=None, help="a taxonomy file (default: the packaged one)"
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of markdown")
    args = parser.parse_args(argv)
    from streams.categorize import load_taxonomy

    categorizer = Categorizer(load_taxonomy(args.taxonomy))
    samples = load_labelled(args.labels)
    reports = []
    for split in args.split or ["dev", "test", "all"]:
        chosen = [s for s in samples if split == "all" or s.split == split]
        reports.append(evaluate_categories(chosen, args.predictions, categorizer, split=split))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        print("\n\n".join(r.to_markdown() for r in reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
