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
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("engine", help="service verdicts/s with in-process vLLM vs offline LLM.generate")
    p.add_argument("--events", type=int, default=256)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.command == "throughput":
        from loadtest.throughput import run

        result = run(args.events)
    elif args.command == "engine":
        from loadtest.engine import run as run_engine

        result = run_engine(args.events, args.max_tokens)
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2 if not args.json else 0).decode() + "\n")


if __name__ == "__main__":
    main()
