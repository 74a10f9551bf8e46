"""Benchmark evaluation: F1 of verdicts against the GuardReasoner benchmarks' gold labels."""

from __future__ import annotations

from streams.eval.benchmark import Benchmark, Sample, Task, load_benchmark
from streams.eval.score import BenchmarkResult, EvalReport, score

__all__ = ["Benchmark", "BenchmarkResult", "EvalReport", "Sample", "Task", "load_benchmark", "score"]
