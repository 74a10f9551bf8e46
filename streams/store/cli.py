"""``guardstream store`` (the sink) and ``guardstream users`` (console accounts).

Both open the database of ``GUARDSTREAM_STORE_URL`` (default: the embedded
PostgreSQL under the data folder) and migrate its schema first.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import replace
from typing import Any

from streams.config import Settings
from streams.errors import ConfigError
from streams.store.roles import Role

__all__ = ["add_commands", "run_store", "with_bootstrap"]

SubParsers = Any  # argparse's _SubParsersAction is private


def with_bootstrap(settings: Settings, bootstrap: str | None) -> Settings:
    if bootstrap:
        settings = replace(settings, kafka=replace(settings.kafka, bootstrap=bootstrap))
    return settings


def run_store(settings: Settings) -> int:
    """Run the sink until SIGTERM/SIGINT (what ``guardstream store`` and ``up`` run)."""
    from streams.store.database import wait_for_database
    from streams.store.sink import StoreSink

    store = settings.store
    database = wait_for_database(
        store.database_url, backoff_initial_s=store.backoff_initial_s, backoff_max_s=store.backoff_max_s
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await StoreSink(settings, database).run(stop)

    try:
        asyncio.run(main())
    finally:
        database.close()
    return 0


def cmd_store(args: argparse.Namespace, settings: Settings) -> int:
    return run_store(with_bootstrap(settings, args.bootstrap))


def _read_password(stream: Any) -> str:
    line: str = stream.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise ConfigError("no password on stdin (give it as the first line)")
    return password


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    from streams.store.database import open_database
    from streams.store.users import add_user

    password = _read_password(sys.stdin)
    database = open_database(settings.store.database_url)
    try:
        with database.connect() as conn:
            add_user(conn, args.name, Role(args.role), password, replace=args.replace)
    finally:
        database.close()
    print(f"user {args.name} ({args.role}) {'updated' if args.replace else 'added'}", file=sys.stderr)
    return 0


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    from streams.store.database import open_database
    from streams.store.users import list_users

    database = open_database(settings.store.database_url)
    try:
        with database.connect() as conn:
            for name, role, created, disabled in list_users(conn):
                fields = [name, role, created.isoformat(timespec="seconds")] + (
                    ["disabled"] if disabled else []
                )
                print("\t".join(fields))
    finally:
        database.close()
    return 0


def add_commands(sub: SubParsers) -> None:
    p = sub.add_parser("store", help="consume verdicts (archive, replay) into the PostgreSQL store")
    p.add_argument("--bootstrap", help="HOST:PORT[,HOST:PORT] (default GUARDSTREAM_KAFKA_BOOTSTRAP)")
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("users", help="review-console accounts")
    users = p.add_subparsers(dest="users_command", required=True)
    a = users.add_parser("add", help="add a user; the password is read from stdin")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=[r.value for r in Role])
    a.add_argument(
        "--password-stdin", action="store_true", required=True, help="read the password from stdin (required)"
    )
    a.add_argument("--replace", action="store_true", help="reset the role and password of an existing user")
    a.set_defaults(func=cmd_users_add)
    a = users.add_parser("list", help="list users and roles")
    a.set_defaults(func=cmd_users_list)
