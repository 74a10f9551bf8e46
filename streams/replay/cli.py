"""``guardstream replay`` and ``guardstream diff``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import orjson

from streams.cli_args import add_engine_flags, engine_config, with_bootstrap
from streams.config import Settings
from streams.errors import ConfigError
from streams.replay.diff import Diff, compute_diff, load_originals, load_replayed
from streams.replay.plan import load_run, plan_run, save_run
from streams.replay.runner import Progress, run_replay
from streams.replay.runs import new_run_id, parse_time

__all__ = ["add_commands"]

_REPLAY_PRIORITY = 10  # vLLM runs lower numbers first: live traffic (0) goes ahead


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="re-moderate a range of a topic with another model or policy")
    p.add_argument("--bootstrap", help="HOST:PORT[,HOST:PORT] (default GUARDSTREAM_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", help="the topic to replay (default: the events topic)")
    p.add_argument("--from", dest="time_from", help="first record time: ISO-8601 or epoch seconds")
    p.add_argument("--until", dest="time_until", help="last record time: ISO-8601 or epoch seconds")
    p.add_argument("--run-id", help="resume this run (default: a new run id)")
    p.add_argument("--max-rate", type=float, default=0.0, help="events per second at most (0: no limit)")
    p.add_argument(
        "--priority", type=int, help=f"vLLM request priority, lower first (default {_REPLAY_PRIORITY})"
    )
    p.add_argument("--publish-live", action="store_true", help="also publish block/alert records live")
    p.add_argument("--json", action="store_true", help="print the diff as JSON (last line of stdout)")
    p.add_argument("--flips-out", metavar="FILE", help="write the changed events as JSON lines")
    add_engine_flags(p, default_help="default GUARDSTREAM_ENGINE_SPEC")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("diff", help="what a replay run changed (also while it runs)")
    p.add_argument("--run-id", required=True)
    p.add_argument("--bootstrap")
    p.add_argument("--json", action="store_true")
    p.add_argument("--flips-out", metavar="FILE")
    p.add_argument("--show", type=int, default=10, help="changed events to list (default 10)")
    p.set_defaults(func=cmd_diff)


def _report(diff: Diff, args: argparse.Namespace) -> None:
    if args.flips_out:
        with Path(args.flips_out).open("wb") as out:
            for record in diff.flipped_records():
                out.write(orjson.dumps(record) + b"\n")
    if args.json:
        sys.stdout.write(orjson.dumps(diff.to_dict()).decode() + "\n")
    else:
        print(diff.table(getattr(args, "show", 10)))
    sys.stdout.flush()


async def _diff(settings: Settings, run_id: str) -> Diff:
    topics = settings.topics
    originals = await load_originals(settings.kafka, topics.archive)
    replayed = await load_replayed(settings.kafka, topics.replay, run_id)
    return compute_diff(run_id, replayed, originals)


def cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_bootstrap(settings, args.bootstrap)
    _report(asyncio.run(_diff(settings, args.run_id)), args)
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> Diff:
    from streams.engines import create_engine
    from streams.topics import ensure_topics

    bootstrap, topics = settings.kafka, settings.topics
    await ensure_topics(settings.kafka, topics, include_input=False)
    run_id = args.run_id or new_run_id()
    spec = await load_run(bootstrap, topics.replay_runs, run_id) if args.run_id else None
    if spec is None:
        spec = await plan_run(
            bootstrap,
            run_id=run_id,
            topic=args.topic or topics.events,
            time_from=parse_time(args.time_from),
            time_until=parse_time(args.time_until),
            engine=settings.engine.spec,
            priority=_REPLAY_PRIORITY if args.priority is None else args.priority,
            publish_live=args.publish_live,
        )
        await save_run(bootstrap, topics.replay_runs, spec)
        print(f"replay {run_id}: {spec.total} record(s) of {spec.topic} to read", file=sys.stderr)
    else:
        if args.topic and args.topic != spec.topic:
            raise ConfigError(f"run {run_id} replays {spec.topic}, not {args.topic}")
        print(f"replay {run_id}: resuming ({spec.total} record(s) in the run)", file=sys.stderr)
    engine = create_engine(settings.engine, settings.cache)
    await engine.start()
    try:
        originals = await load_originals(bootstrap, topics.archive)
        result = await run_replay(
            settings, spec, engine, originals=originals, max_rate=args.max_rate, progress=Progress(sys.stderr)
        )
    finally:
        await engine.aclose()
    print(
        f"replay {run_id}: {result.moderated} event(s) moderated, {result.skipped} skipped, "
        f"{result.elapsed_s:.1f}s",
        file=sys.stderr,
    )
    return compute_diff(run_id, await load_replayed(bootstrap, topics.replay, run_id), originals)


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_bootstrap(settings, args.bootstrap)
    settings = replace(settings, engine=engine_config(args, settings)).check()
    _report(asyncio.run(_replay(args, settings)), args)
    return 0
