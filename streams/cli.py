"""``guardstream`` command line: eval, broker, worker, up, send, tail.

Every command reads :class:`~streams.config.Settings` from the environment
first; flags override single values.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import orjson

from streams.config import EngineConfig, Settings
from streams.errors import StreamsError

__all__ = ["main"]

logger = logging.getLogger("streams.cli")



def _engine_flags(p: argparse.ArgumentParser, *, default_help: str) -> None:
    p.add_argument("--engine", help=f"engine spec KIND:TARGET ({default_help})")
    p.add_argument("--max-tokens", type=int, help="generation cap per verdict")


def _engine_config(args: argparse.Namespace, settings: Settings) -> EngineConfig:
    config = settings.engine
    if getattr(args, "engine", None):
        config = replace(config, spec=args.engine)
    if getattr(args, "max_tokens", None):
        config = replace(config, max_tokens=args.max_tokens)
    return config


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from streams.eval import load_benchmark

    if bool(args.recorded) == bool(args.engine):
        raise StreamsError("give exactly one of --recorded DIR or --engine SPEC")
    engine_config = _engine_config(args, settings)
    if args.recorded:
        engine_config = replace(engine_config, spec=f"recorded:{args.recorded}")
    # One attempt per sample: a missing recording or a failing engine must fail the eval, not wait.
    settings = replace(settings, engine=engine_config, retry=replace(settings.retry, attempts=1))
    benchmarks = [load_benchmark(Path(p)) for p in args.benchmark]
    if args.through_kafka:
        from streams.eval.kafka import evaluate_through_kafka

        report = evaluate_through_kafka(benchmarks, settings, bootstrap=args.bootstrap)
    else:
        from streams.eval.run import evaluate_with_engine

        report = asyncio.run(evaluate_with_engine(benchmarks, settings))
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
    else:
        print(report.table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guardstream", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("eval", help="F1 on GuardReasoner benchmark files")
    p.add_argument("--benchmark", nargs="+", required=True, metavar="FILE")
    p.add_argument("--recorded", metavar="DIR", help="recorded outputs (generated_predictions.jsonl files)")
    _engine_flags(p, default_help="instead of --recorded")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--through-kafka", action="store_true", help="send samples through a broker and a worker")
    p.add_argument("--bootstrap", help="with --through-kafka: use this broker instead of an embedded one")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings.from_env()
        code = args.func(args, settings)
    except StreamsError as exc:
        print(f"guardstream {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
