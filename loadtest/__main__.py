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
    p.add_argument("--runs", type=int, default=3, help="runs; figures are medians with min-max")
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
    p = sub.add_parser("cache", help="engine calls the verdict cache saves on a stream with repeats")
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--repeat", type=float, default=0.3, help="share of messages drawn from a Zipf pool")
    p.add_argument("--engine", default="fake:sleep=0.05,concurrency=64")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("early-exit", help="tokens per verdict with and without early exit (fixture model)")
    p.add_argument("--events", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("profile", help="py-spy flame graph of the worker under the throughput load")
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--out", default="loadtest/out/worker-flame.svg")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("scaleout", help="1 vs 3 workers sharing two remote engines (FAKE vLLM servers)")
    p.add_argument("--events", type=int, default=1200)
    p.add_argument("--in-flight", type=int, default=16, help="each worker's GUARDSTREAM_BATCH_MAX_IN_FLIGHT")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("store", help="store sink verdicts/s into PostgreSQL vs COPY of the same rows")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--batch-max-size", type=int, help="default GUARDSTREAM_STORE_BATCH_MAX_SIZE")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("console", help="queue page latency over N stored verdicts: first vs deep pages")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=100, help="timed requests per kind of page")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("moderate", help="µs per event of the worker's moderation work in-process (no broker)")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
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
    elif args.command == "cache":
        from loadtest.cache import run as run_cache

        result = run_cache(args.events, args.repeat, args.engine)
    elif args.command == "early-exit":
        from loadtest.early import run as run_early

        result = run_early(args.events, args.max_tokens)
    elif args.command == "profile":
        from pathlib import Path

        from loadtest.profile import run as run_profile

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        result = run_profile(args.events, Path(args.out))
    elif args.command == "engine":
        from loadtest.engine import run as run_engine

        result = run_engine(args.events, args.max_tokens, args.runs)
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
    elif args.command == "scaleout":
        from loadtest.scaleout import run_scaleout

        result = run_scaleout(args.events, in_flight=args.in_flight)
    elif args.command == "store":
        from loadtest.store import run as run_store

        result = run_store(args.events, batch_max_size=args.batch_max_size)
    elif args.command == "console":
        from loadtest.console import run as run_console

        result = run_console(args.rows, requests=args.requests)
    elif args.command == "moderate":
        from loadtest.moderate import run as run_moderate

        result = run_moderate(args.events, args.rounds)
    elif args.command == "findings":
        from pathlib import Path

        from loadtest.findings import run as run_findings

        result = run_findings(Path(args.recorded), Path(args.benchmark), limit=args.limit, repeat=args.repeat)
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2 if not args.json else 0).decode() + "\n")


if __name__ == "__main__":
    main()
