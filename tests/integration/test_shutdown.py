"""No process outlives the command that started it: SIGTERM, SIGINT and SIGKILL of broker/up/worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.app import READY_LOG
from streams.broker import free_port, port_in_use, wait_for_port
from streams.supervise import _descendants, _stat

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _start(args: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            start_new_session=True,
        )


def _wait_gone(pids: dict[int, int], timeout_s: float = 15.0) -> list[int]:
    """The pids (same start time) still running after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if (s := _stat(p)) is not None and s[1] == pids[p]]
        time.sleep(0.2)
    return alive


def _wait_log(log: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_broker_command_never_leaves_the_broker_running(tmp_path: Path, how: signal.Signals) -> None:
    port = free_port()
    proc = _start(["broker", "--port", str(port)], tmp_path / "broker.log")
    wait_for_port("127.0.0.1", port, 30, None)
    children = _descendants(proc.pid, skip=-1)
    assert children, "the broker runs as a child process"
    os.kill(proc.pid, how)
    proc.wait(30)
    assert _wait_gone(children) == []
    assert not port_in_use("127.0.0.1", port)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_up_never_leaves_children_running(tmp_path: Path, how: signal.Signals) -> None:
    port = free_port()
    log = tmp_path / "up.log"
    console = free_port()
    proc = _start(
        ["up", "--port", str(port), "--engine", "fake:instant"],
        log,
        GUARDSTREAM_STORE_DATA_DIR=str(tmp_path / "data"),
        GUARDSTREAM_CONSOLE_PORT=str(console),
    )
    _wait_log(log, READY_LOG, proc)
    wait_for_port("127.0.0.1", console, 60, None)  # the review console runs beside the worker
    children = _descendants(proc.pid, skip=-1)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children]
    assert [b"store"] in [c[-2:-1] for c in commands] and [b"console"] in [c[-2:-1] for c in commands]
    os.kill(proc.pid, how)
    proc.wait(90)
    assert _wait_gone(children) == [], log.read_text(errors="replace")[-2000:]
    assert not port_in_use("127.0.0.1", port)


@pytest.mark.vllm
def test_a_killed_worker_leaves_no_engine_process(tmp_path: Path, fixture_model: Path) -> None:
    """SIGKILL of the worker alone (not its group): vLLM's EngineCore must not stay behind."""
    from dataclasses import replace

    from streams.config import Settings

    from .test_engines import engine_config, vllm_env

    port = free_port()
    broker_log = tmp_path / "broker.log"
    broker = _start(["broker", "--port", str(port)], broker_log)
    try:
        wait_for_port("127.0.0.1", port, 30, None)
        settings = Settings.from_env({}).for_embedded_broker().isolated("kill")
        settings = replace(
            settings,
            kafka=replace(settings.kafka, bootstrap=f"127.0.0.1:{port}", partitions=1),
            engine=engine_config(fixture_model),
        )
        log = tmp_path / "worker.log"
        worker = _start(["worker"], log, **settings.to_env(), **vllm_env())
        _wait_log(log, READY_LOG, worker, timeout_s=240)
        engine_processes = {
            pid: started
            for pid, started in _descendants(worker.pid, skip=-1).items()
            if "streams.supervise" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        }
        assert engine_processes, "vLLM runs its engine core in a child process"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(30)
        assert _wait_gone(engine_processes, timeout_s=20) == []
    finally:
        os.kill(broker.pid, signal.SIGTERM)
        broker.wait(30)
