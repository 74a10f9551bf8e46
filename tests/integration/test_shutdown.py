"""No process outlives the command that started it: SIGTERM, SIGINT and SIGKILL of broker/up/worker."""

from __future__ import annotations

import json
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
from tests.cli import cli_env, run_cli

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


@pytest.mark.parametrize("database", ["cannot_start", "unreachable"])
def test_up_moderates_when_the_verdict_store_cannot_run(tmp_path: Path, database: str) -> None:
    """The store and console are beside the worker, never in its way: an embedded PostgreSQL that
    cannot start, or a database that is down, still leaves ``up`` moderating events."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    url = {
        "cannot_start": f"embedded:{blocker}/postgres",  # its parent is a file: initdb cannot run
        "unreachable": f"postgresql://guard@127.0.0.1:{free_port()}/guard",
    }[database]
    port = free_port()
    log = tmp_path / "up.log"
    proc = _start(
        ["up", "--port", str(port), "--engine", "fake:instant"],
        log,
        GUARDSTREAM_STORE_URL=url,
        GUARDSTREAM_STORE_DATA_DIR=str(tmp_path / "data"),
        GUARDSTREAM_CONSOLE_PORT=str(free_port()),
    )
    try:
        _wait_log(log, READY_LOG, proc)
        bootstrap = f"127.0.0.1:{port}"
        event = {
            "id": "store-down-1",
            "conversation_id": "c",
            "user_id": "u",
            "timestamp": 1,
            "request": "hi",
        }
        sent = run_cli("send", "--bootstrap", bootstrap, "-", stdin=json.dumps(event) + "\n", env=cli_env())
        assert sent.returncode == 0, sent.stderr
        tail = run_cli(
            "tail", "--bootstrap", bootstrap, "moderation.archive", "--max", "1", "--idle-timeout", "60",
            "--compact", env=cli_env(),
        )  # fmt: skip
        assert tail.returncode == 0, tail.stderr
        assert json.loads(tail.stdout.splitlines()[0])["event_id"] == "store-down-1"
        text = log.read_text(errors="replace")
        if database == "cannot_start":
            assert "verdict store and console not started" in text and "NOT STARTED" in text
        else:
            assert "the store and console wait for it" in text
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(90)


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
