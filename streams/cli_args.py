"""Command-line pieces shared by the ``guardstream`` subcommands (engine flags, bootstrap)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from streams.config import EngineConfig, Settings

__all__ = ["add_engine_flags", "engine_config", "with_bootstrap"]


def add_engine_flags(p: argparse.ArgumentParser, *, default_help: str) -> None:
    p.add_argument("--engine", help=f"engine spec KIND:TARGET ({default_help})")
    p.add_argument("--max-tokens", type=int, help="generation cap per verdict")


def engine_config(args: argparse.Namespace, settings: Settings) -> EngineConfig:
    config = settings.engine
    if getattr(args, "engine", None):
        config = replace(config, spec=args.engine)
    if getattr(args, "max_tokens", None):
        config = replace(config, max_tokens=args.max_tokens)
    return config


def with_bootstrap(settings: Settings, bootstrap: str | None) -> Settings:
    if bootstrap:
        settings = replace(settings, kafka=replace(settings.kafka, bootstrap=bootstrap))
    return settings
