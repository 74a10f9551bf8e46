"""Run a GuardStream worker as a child process (through-Kafka eval, tests, load tests).

The child gets its settings as ``GUARDSTREAM_*`` variables, runs in its own
process group (so a vLLM engine process it starts goes down with it), and logs
to a file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from streams.config import Settings

__all__ = ["WorkerProcess"]


class WorkerProcess:
    def __init__(
        self,
        settings: Settings,
        *,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        args: Sequence[str] = ("worker",),
        module: str = "streams",
    ) -> None:
        """``args``: the ``guardstream`` command line to run (``store``, ``console`` work the same way);
        ``module``: the module run with ``python -m`` (a benchmark's own worker)."""
        self.settings = settings
        self.log_path = log_path
        self._extra_env = extra_env or {}
        self._args = tuple(args)
        self._module = module
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDSTREAM_")}
        env.update(self.settings.to_env())
        env.update(self._extra_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", self._module, *self._args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else -1

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_for_log(self, text: str, timeout_s: float) -> None:
        """Wait until the worker logged ``text`` (e.g. that partitions were assigned)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log_path.read_text(errors="replace"):
                return
            if not self.alive():
                raise RuntimeError(f"worker exited early; log:\n{self.log_tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"worker did not log {text!r} within {timeout_s:g}s; log:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, for tests)."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        try:  # anything the worker left in its group (engine processes)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return proc.returncode

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
