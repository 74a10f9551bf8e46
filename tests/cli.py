"""Running the ``guardstream`` command (``python -m streams``) from tests, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.config import Settings

__all__ = ["ROOT", "cli_env", "run_cli"]

ROOT = Path(__file__).resolve().parents[1]


def cli_env(settings: Settings | None = None, **overrides: str) -> dict[str, str]:
    """This process's environment less its ``GUARDSTREAM_*`` variables, then ``settings``, ``overrides``.

    Dropping the inherited variables keeps a developer's shell settings out of a test's command.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDSTREAM_")}
    if settings is not None:
        env.update(settings.to_env())
    env.update(overrides)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``guardstream ARGS`` to completion, output captured as text; the caller checks the exit code."""
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env if env is not None else cli_env(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
