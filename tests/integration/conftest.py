"""Integration fixtures: a real Tansu broker, real worker processes, unique topics per test."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streams.app import READY_LOG
from streams.broker import EmbeddedBroker, free_port, wait_for_port
from streams.client import read_topic, send_lines
from streams.config import BatchConfig, CacheConfig, RetryConfig, Settings
from streams.event import ChatEvent, encode_event
from streams.process import WorkerProcess
from streams.topics import ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log") as running:
        yield running


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def settings_factory(broker: EmbeddedBroker) -> SettingsFactory:
    def make(*, engine: str, **groups: Any) -> Settings:
        base = Settings.from_env({}).for_embedded_broker().isolated("test")
        settings = replace(
            base,
            kafka=replace(base.kafka, bootstrap=broker.bootstrap, partitions=4),
            engine=replace(base.engine, spec=engine, timeout_s=30.0),
            batch=BatchConfig(max_in_flight=64),
            retry=RetryConfig(attempts=2, backoff_initial_s=0.1, backoff_max_s=0.5),
            # off unless a test is about it: most tests send many identical "hello" events
            cache=CacheConfig(enabled=False),
        )
        settings = replace(settings, **groups)
        asyncio.run(ensure_topics(settings.kafka, settings.topics))
        return settings

    return make


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[WorkerFactory]:
    started: list[WorkerProcess] = []

    def start(
        settings: Settings, *, wait: bool = True, timeout_s: float = 120.0, **env: str
    ) -> WorkerProcess:
        worker = WorkerProcess(
            settings, log_path=tmp_path / f"worker-{len(started)}.log", extra_env=env
        ).start()
        started.append(worker)
        if wait:
            worker.wait_for_log(READY_LOG, timeout_s)
        return worker

    yield start
    for worker in started:
        worker.stop()


def make_events(
    n: int, *, prefix: str = "e", request: str = "hello", response: str | None = None
) -> list[ChatEvent]:
    now = time.time()
    return [ChatEvent(f"{prefix}{i}", f"c{i % 7}", "u1", now, request, response) for i in range(n)]


def send(settings: Settings, payloads: Sequence[bytes | ChatEvent]) -> None:
    lines = [p if isinstance(p, bytes) else encode_event(p) for p in payloads]
    asyncio.run(send_lines(settings.kafka.bootstrap, settings.topics.events, lines))


def collect(
    settings: Settings, topic: str, *, count: int | None = None, idle_s: float = 3.0, timeout_s: float = 90.0
) -> list[dict[str, Any]]:
    """Records of ``topic`` (decoded JSON): until ``count`` arrived, else until idle for ``idle_s``."""

    async def run() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async for record in read_topic(
            settings.kafka.bootstrap, topic, max_records=count, idle_timeout_s=None if count else idle_s
        ):
            out.append(
                {"value": orjson.loads(record.value), "key": record.key, "headers": dict(record.headers)}
            )
        return out

    return asyncio.run(asyncio.wait_for(run(), timeout_s))


def archive_ids(records: Sequence[dict[str, Any]]) -> set[str]:
    return {r["value"]["event_id"] for r in records}


@pytest.fixture(scope="session")
def fixture_model() -> Path:
    """The project's tiny GuardReasoner-format model, built once and cached under .cache/."""
    from streams.fixture import ensure_fixture_model

    root = Path(__file__).resolve().parents[2]
    return ensure_fixture_model(root / ".cache" / "guardstream" / "fixture-model")


class FakeOpenAIServer:
    """The FAKE vLLM server of tests/fakes/openai_server.py in a child process (real HTTP)."""

    def __init__(
        self,
        log_path: Path,
        *,
        delay: tuple[float, float] = (0.0, 0.0),
        concurrency: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._delay = delay
        self._extra = ["--concurrency", str(concurrency)] + (["--api-key", api_key] if api_key else [])
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FakeOpenAIServer:
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.fakes.openai_server",
                    "--port",
                    str(self.port),
                    "--delay-min",
                    str(self._delay[0]),
                    "--delay-max",
                    str(self._delay[1]),
                    *self._extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[2],
            )
        wait_for_port("127.0.0.1", self.port, 30)
        return self

    def control(self, **state: object) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/control", json=state, timeout=5)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/stats", timeout=5).json()
        return data

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def fake_openai(tmp_path: Path) -> Iterator[Callable[..., FakeOpenAIServer]]:
    servers: list[FakeOpenAIServer] = []

    def start(
        *, delay: tuple[float, float] = (0.0, 0.0), concurrency: int = 0, api_key: str | None = None
    ) -> FakeOpenAIServer:
        log = tmp_path / f"fake-openai-{len(servers)}.log"
        server = FakeOpenAIServer(log, delay=delay, concurrency=concurrency, api_key=api_key).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
