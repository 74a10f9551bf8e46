"""``guardstream console [--host H] [--port P] [--bootstrap H:P]``: the review console."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from streams.config import Settings
from streams.errors import ConfigError
from streams.store.cli import with_bootstrap

__all__ = ["add_commands", "serve_console"]


def serve_console(settings: Settings) -> int:
    """Open the store and serve the console until stopped (what ``console`` and ``up`` run)."""
    from streams.console.app import run_console
    from streams.store.database import wait_for_database

    config = settings.console
    if config.cookie_secure.strip().lower() not in ("auto", "true", "false", "1", "0", "yes", "no"):
        raise ConfigError("GUARDSTREAM_CONSOLE_COOKIE_SECURE: auto, true or false")
    if config.cookie_samesite not in ("Strict", "Lax"):
        raise ConfigError("GUARDSTREAM_CONSOLE_COOKIE_SAMESITE: Strict or Lax")
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("GUARDSTREAM_CONSOLE_TLS_CERT and _TLS_KEY go together")
    store = settings.store
    database = wait_for_database(
        store.database_url, backoff_initial_s=store.backoff_initial_s, backoff_max_s=store.backoff_max_s
    )
    try:
        run_console(settings, database)
    finally:
        database.close()
    return 0


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    console = settings.console
    if args.host:
        console = replace(console, host=args.host)
    if args.port is not None:
        console = replace(console, port=args.port)
    return serve_console(with_bootstrap(replace(settings, console=console), args.bootstrap))


def add_commands(sub: Any) -> None:
    p = sub.add_parser("console", help="serve the review console (login required; 127.0.0.1 by default)")
    p.add_argument("--host", help="listen address (default GUARDSTREAM_CONSOLE_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default GUARDSTREAM_CONSOLE_PORT, 8080)")
    p.add_argument(
        "--bootstrap", help="Kafka for moderation.corrections (default GUARDSTREAM_KAFKA_BOOTSTRAP)"
    )
    p.set_defaults(func=cmd_console)
