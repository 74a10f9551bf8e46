"""``guardstream`` command line: eval, broker, worker, up, send, tail, replay, diff, capacity,
store, users, console, export.

Every command reads :class:`~streams.config.Settings` from the environment
first; flags override single values.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from streams.cli_args import add_engine_flags, engine_config, with_bootstrap
from streams.config import Settings
from streams.errors import StreamsError

if TYPE_CHECKING:
    from streams.eval import Benchmark

__all__ = ["main"]

logger = logging.getLogger("streams.cli")


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from streams.eval import load_benchmark

    if bool(args.recorded) == bool(args.engine):
        raise StreamsError("give exactly one of --recorded DIR or --engine SPEC")
    # The full output is scored (as published); --early-exit measures early exit beside it.
    config = replace(engine_config(args, settings), early_exit=False)
    if args.recorded:
        config = replace(config, spec=f"recorded:{args.recorded}")
    # One attempt per sample: a missing recording or a failing engine must fail the eval, not wait.
    settings = replace(settings, engine=config, retry=replace(settings.retry, attempts=1))
    benchmarks = [load_benchmark(Path(p)) for p in args.benchmark]
    if args.early_exit:
        return _eval_early_exit(args, settings, benchmarks)
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


def _eval_early_exit(args: argparse.Namespace, settings: Settings, benchmarks: Sequence[Benchmark]) -> int:
    from streams.eval.early import evaluate_early_exit
    from streams.eval.run import with_engine

    if args.through_kafka:
        raise StreamsError("--early-exit is measured offline; it cannot be combined with --through-kafka")
    report = asyncio.run(with_engine(settings, lambda e, p: evaluate_early_exit(benchmarks, e, p)))
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
    else:
        print(report.table())
    return 0


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def run_worker(settings: Settings, *, loglevel: str = "info") -> int:
    """Create topics, load the engine, run the Faust worker until stopped."""
    from streams import telemetry
    from streams.app import GuardWorker, create_app, engine_gate
    from streams.engines import create_engine
    from streams.supervise import start_reaper
    from streams.topics import ensure_topics

    settings.check()
    start_reaper()  # engine processes (vLLM's EngineCore) must not outlive a killed worker
    loop = _new_loop()
    loop.run_until_complete(ensure_topics(settings.kafka, settings.topics))
    tel = settings.telemetry
    telemetry.setup_tracing(
        tel.traces_exporter, service_name=tel.service_name, capture_content=tel.capture_content
    )
    engine = create_engine(settings.engine, settings.cache)
    gate = engine_gate(settings, engine)
    app = create_app(settings, engine, gate=gate)
    worker = GuardWorker(
        app, engine, settings, gate=gate, loop=loop, loglevel=loglevel, quiet=True, redirect_stdouts=False
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        telemetry.shutdown_tracing()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_bootstrap(settings, args.bootstrap)
    if args.http_port is not None:
        settings = replace(settings, telemetry=replace(settings.telemetry, http_port=args.http_port))
    settings = replace(settings, engine=engine_config(args, settings))
    return run_worker(settings, loglevel="debug" if args.verbose else "info")


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.broker import EmbeddedBroker

    broker = EmbeddedBroker(host=args.host, port=args.port).start()
    print(f"embedded broker (memory only) listening on {broker.bootstrap}; Ctrl-C stops it", flush=True)
    signal.signal(signal.SIGTERM, _exit_on_signal)  # SIGTERM stops the broker too, like Ctrl-C
    try:
        return broker.wait()
    finally:
        broker.stop()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from streams.broker import EmbeddedBroker
    from streams.engines import preflight

    settings = replace(settings, engine=engine_config(args, settings))
    preflight(settings.engine)  # a missing model fails here, before anything starts
    broker = None
    if not args.bootstrap:
        broker = EmbeddedBroker(host="127.0.0.1", port=args.port).start()
        settings = with_bootstrap(settings, broker.bootstrap).for_embedded_broker()
    else:
        settings = with_bootstrap(settings, args.bootstrap)
    bootstrap = settings.kafka.bootstrap
    topics = settings.topics
    services = _Services(settings)
    try:
        services.start()
        console = settings.console
        print(
            f"GuardStream on {bootstrap}{' (embedded broker, memory only)' if broker else ''}\n"
            f"  engine : {settings.engine.spec}\n"
            f"  send   : guardstream send --bootstrap {bootstrap} events.jsonl   (topic {topics.events})\n"
            f"  watch  : guardstream tail --bootstrap {bootstrap} {topics.archive}\n"
            f"           ({topics.block}, {topics.alerts}, {topics.dlq},\n"
            f"            SIEM: {topics.findings_ecs}, {topics.findings_ocsf})\n"
            f"  review : http://{console.host}:{console.port}/   (first: guardstream users add NAME "
            f"--role admin --password-stdin)\n"
            f"  store  : {services.describe()}   (logs in {services.log_dir})",
            flush=True,
        )
        return run_worker(settings, loglevel="debug" if args.verbose else "info")
    finally:
        services.stop()
        if broker is not None:
            broker.stop()


class _Services:
    """What ``up`` runs beside the worker: the verdict store (its database, migrated, and the
    ``store`` sink) and the review ``console``, as child processes that share its settings."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.log_dir = Path(settings.store.data_dir).expanduser() / "logs"
        self._database: Any = None
        self._children: list[Any] = []
        self.failed: str | None = None

    def describe(self) -> str:
        from streams.store.database import redact_url

        url = redact_url(self._settings.store.database_url)
        return f"{url} NOT STARTED: {self.failed}" if self.failed else url

    def start(self) -> None:
        """Start the database (embedded) and the two children. A database that is down only
        delays them (they wait for it with backoff); one that cannot start at all is logged and
        leaves them out: neither may keep the worker from moderating."""
        from streams.process import WorkerProcess
        from streams.store.database import open_database
        from streams.store.errors import StoreError, StoreUnavailable

        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._database = open_database(self._settings.store.database_url)  # starts embedded, migrates
        except StoreUnavailable as exc:
            logger.warning('database unreachable; the store and console wait for it error="%s"', exc)
        except StoreError as exc:
            logger.error('verdict store and console not started; moderation goes on error="%s"', exc)
            self.failed = str(exc)
            return
        for command in ("store", "console"):
            log = self.log_dir / f"{command}.log"
            self._children.append(WorkerProcess(self._settings, log_path=log, args=(command,)).start())

    def stop(self) -> None:
        for child in reversed(self._children):
            child.stop(timeout_s=15)
        if self._database is not None:
            self._database.close()


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from streams.client import send_lines

    settings = with_bootstrap(settings, args.bootstrap)
    if args.file == "-":
        lines = list(sys.stdin.buffer)
    else:
        lines = Path(args.file).read_bytes().splitlines()
    from streams import telemetry

    topic = args.topic or settings.topics.events
    tel = settings.telemetry
    telemetry.setup_tracing(tel.traces_exporter, service_name=f"{tel.service_name}-send")
    try:
        count = asyncio.run(send_lines(settings.kafka, topic, lines, trace=True))
    finally:
        telemetry.shutdown_tracing()
    print(f"sent {count} event(s) to {topic}", file=sys.stderr)
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    from streams.client import read_topic

    settings = with_bootstrap(settings, args.bootstrap)

    async def run() -> None:
        async for record in read_topic(
            settings.kafka, args.topic, max_records=args.max, idle_timeout_s=args.idle_timeout
        ):
            value = record.value
            try:
                text = orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2).decode()
            except (orjson.JSONDecodeError, TypeError):
                text = repr(value)
            if args.compact:
                text = value.decode(errors="replace")
            print(
                text if args.compact else f"# {record.topic}[{record.partition}]@{record.offset}\n{text}",
                flush=True,
            )

    asyncio.run(run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guardstream", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("eval", help="F1 on GuardReasoner benchmark files")
    p.add_argument("--benchmark", nargs="+", required=True, metavar="FILE")
    p.add_argument("--recorded", metavar="DIR", help="recorded outputs (generated_predictions.jsonl files)")
    add_engine_flags(p, default_help="instead of --recorded")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--through-kafka", action="store_true", help="send samples through a broker and a worker")
    p.add_argument("--bootstrap", help="with --through-kafka: use this broker instead of an embedded one")
    p.add_argument(
        "--early-exit",
        action="store_true",
        help="apply early exit to prompt-only samples: F1 with and without it, and saved_fraction",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("up", help="the main job: embedded broker (unless --bootstrap) + topics + worker")
    p.add_argument("--bootstrap", help="use this Kafka cluster instead of starting the embedded broker")
    p.add_argument("--port", type=int, default=9092, help="embedded broker port (default 9092)")
    add_engine_flags(p, default_help="default: GuardReasoner-1B through in-process vLLM")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("worker", help="run a moderation worker against a Kafka cluster")
    p.add_argument("--bootstrap", help="HOST:PORT[,HOST:PORT] (default GUARDSTREAM_KAFKA_BOOTSTRAP)")
    p.add_argument("--http-port", type=int, help="serve /metrics, /healthz, /readyz on this port")
    add_engine_flags(p, default_help="default GUARDSTREAM_ENGINE_SPEC")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("broker", help="run the embedded broker in the foreground (memory only)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092)
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("send", help="send JSONL chat events (file or - for stdin)")
    p.add_argument("file", nargs="?", default="-")
    p.add_argument("--bootstrap")
    p.add_argument("--topic", help="default: the events topic")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("tail", help="print a topic's records from the beginning, following")
    p.add_argument("topic")
    p.add_argument("--bootstrap")
    p.add_argument("--max", type=int, help="stop after N records")
    p.add_argument("--idle-timeout", type=float, help="stop when nothing arrives for this many seconds")
    p.add_argument("--compact", action="store_true", help="one JSON document per line")
    p.set_defaults(func=cmd_tail)

    from streams.replay.cli import add_commands as replay_commands

    replay_commands(sub)
    from streams.capacity import add_command as capacity_command

    capacity_command(sub)
    from streams.console import cli as console_cli
    from streams.export import cli as export_cli
    from streams.store import cli as store_cli

    for commands in (store_cli, console_cli, export_cli):  # store, users, console, export
        commands.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # the Kafka and HTTP clients' INFO lines (one per request) are noise
        for noisy in ("aiokafka", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        code = args.func(args, settings)
    except StreamsError as exc:
        print(f"guardstream {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
