"""``python -m loadtest COMMAND --json``: see loadtest/RESULTS.md for measured figures."""

from __future__ import annotations

import argparse
import sys

import orjson


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput", help="worker events/s with an instant engine vs raw aiokafka")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument(
        "--trace", action="store_true", help="also measure with tracing on (OTLP to a loopback sink)"
    )
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("engine", help="service verdicts/s with in-process vLLM vs offline LLM.generate")
    p.add_argument("--events", type=int, default=256)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("latency", help="end-to-end latency under open-loop load")
    p.add_argument("--rate", type=float, help="events/s (default: --sweep)")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--sweep", action="store_true", help="25/50/90%% of the engine's saturating rate")
    p.add_argument("--engine", default="fake:sleep=0.2,concurrency=64")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("burst", help="drain time and lag curve of a backlog")
    p.add_argument("--events", type=int, default=3000)
    p.add_argument("--engine", default="fake:sleep=0.2,concurrency=64")
    p.add_argument("--plot", default="loadtest/out/burst.png", help="PNG path ('' for none)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("findings", help="µs per harmful verdict for SIEM findings and privacy (no broker)")
    p.add_argument("--recorded", default="../shared/guardreasoner/predictions/3B/HarmBenchResponse")
    p.add_argument("--benchmark", default="../shared/guardreasoner/benchmark/0_5_harmbench_response.json")
    p.add_argument("--limit", type=int, help="first N benchmark samples only")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.command == "throughput":
        from loadtest.throughput import run

        result = run(args.events, trace=args.trace)
    elif args.command == "engine":
        from loadtest.engine import run as run_engine

        result = run_engine(args.events, args.max_tokens)
    elif args.command == "latency":
        from loadtest.latency import run_latency, saturating_rate

        if args.rate is not None and not args.sweep:
            rates = [args.rate]
        else:
            rates = [round(saturating_rate(args.engine) * f, 1) for f in (0.25, 0.5, 0.9)]
        result = run_latency(rates, args.seconds, args.engine)
    elif args.command == "burst":
        from pathlib import Path

        from loadtest.latency import run_burst

        result = run_burst(args.events, args.engine, Path(args.plot) if args.plot else None)
    elif args.command == "findings":
        from pathlib import Path

        from loadtest.findings import run as run_findings

        result = run_findings(Path(args.recorded), Path(args.benchmark), limit=args.limit, repeat=args.repeat)
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2 if not args.json else 0).decode() + "\n")


if __name__ == "__main__":
    main()
