"""No child process outlives its parent: a parent-death signal, and a reaper for what we don't start.

* Children GuardStream starts itself (the embedded broker, the store sink and
  console under ``up``) get ``PR_SET_PDEATHSIG=SIGKILL`` (:func:`die_with_parent`):
  the kernel kills them when their parent dies, even by SIGKILL. Linux ties it
  to the *thread* that started the child, so start them from the main thread.
* Children started by libraries (vLLM's EngineCore process) cannot be given
  that signal, so a worker also runs a **reaper** (:func:`start_reaper`): a small
  process outside the worker's process group that notes the worker's
  descendants every second and, once the worker is gone, kills those still
  running. A normal shutdown stops them first; the reaper only cleans up after
  a crash (SIGKILL, the OOM killer).

``python -m streams.supervise PID`` is the reaper itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["die_with_parent", "start_reaper"]

_PR_SET_PDEATHSIG = 1
_INTERVAL_S = 1.0


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when its parent dies (Linux)."""
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the call took effect
            os._exit(1)

    return preexec


def start_reaper() -> subprocess.Popen[bytes] | None:
    """Watch this process from outside; kill its leftover descendants when it dies."""
    if not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "streams.supervise", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outside the worker's group: a group kill must not take it first
        close_fds=True,
    )


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a running process; None when it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()  # the command name may contain spaces
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[1]), int(fields[19])


def _descendants(root: int, skip: int) -> dict[int, int]:
    """pid -> start time of every descendant of ``root``."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is not None:
            children.setdefault(stat[0], []).append((int(entry), stat[1]))
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            if pid != skip and pid not in found:
                found[pid] = started
                todo.append(pid)
    return found


def reap(watched: int, *, interval_s: float = _INTERVAL_S) -> int:
    """Run until ``watched`` is gone, then SIGKILL its last known descendants; returns how many."""
    first = _stat(watched)
    if first is None:
        return 0
    me = os.getpid()
    known: dict[int, int] = {}
    while (now := _stat(watched)) is not None and now[1] == first[1]:
        known = _descendants(watched, skip=me)
        time.sleep(interval_s)
    killed = 0
    for pid, started in known.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:  # the same process, not a reused pid
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the worker, not for us
    reap(int(sys.argv[1]))
