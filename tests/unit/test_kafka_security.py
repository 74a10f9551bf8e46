"""Kafka security settings: one translation (streams/kafka_security.py), reaching every client the
service creates, and secrets that never show in a repr, a log line or an error."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import aiokafka.client
import pytest

from streams.config import EngineConfig, KafkaConfig, Settings
from streams.errors import ConfigError
from streams.kafka_security import aiokafka_options, client_options, faust_credentials
from streams.secret import Secret
from tests.certs import KEY_PASSWORD, Certs, make_certs

PASSWORD = "sasl-pass-2c9d1e"  # noqa: S105 - test credential


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def secured(certs: Certs, protocol: str = "SASL_SSL", mechanism: str = "SCRAM-SHA-512") -> KafkaConfig:
    return KafkaConfig(
        bootstrap="127.0.0.1:1",
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username="moderator",
        sasl_password=Secret(PASSWORD),
        ssl_cafile=str(certs.ca),
        ssl_certfile=str(certs.client_cert),
        ssl_keyfile=str(certs.client_key),
        ssl_key_password=Secret(KEY_PASSWORD),
    )


def test_secrets_are_masked_everywhere_but_the_child_environment(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "GUARDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "GUARDSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "GUARDSTREAM_KAFKA_SASL_USERNAME": "moderator",
        "GUARDSTREAM_KAFKA_SASL_PASSWORD": PASSWORD,
        "GUARDSTREAM_KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
        "GUARDSTREAM_ENGINE_API_KEY": "vllm-key-91ab",
    }
    settings = Settings.from_env(env)
    assert settings.kafka.sasl_password.reveal() == PASSWORD
    assert settings.engine.api_key.reveal() == "vllm-key-91ab"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings %s %r", settings, settings.kafka)
    for shown in (repr(settings), str(settings), caplog.text, f"{settings.kafka.sasl_password}"):
        for secret in (PASSWORD, KEY_PASSWORD, "vllm-key-91ab"):
            assert secret not in shown
    assert "**********" in repr(settings.kafka)
    child = settings.to_env()  # a worker process needs the real values
    assert child["GUARDSTREAM_KAFKA_SASL_PASSWORD"] == PASSWORD
    assert child["GUARDSTREAM_ENGINE_API_KEY"] == "vllm-key-91ab"
    assert Settings.from_env(child) == settings
    assert not Settings.from_env({}).kafka.sasl_password  # empty: not set


@pytest.mark.parametrize(
    ("protocol", "sasl", "tls"),
    [
        ("PLAINTEXT", False, False),
        ("SSL", False, True),
        ("SASL_PLAINTEXT", True, False),
        ("SASL_SSL", True, True),
    ],
)
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_options_for_each_protocol_and_mechanism(
    certs: Certs, protocol: str, sasl: bool, tls: bool, mechanism: str
) -> None:
    options = aiokafka_options(secured(certs, protocol, mechanism))
    assert options["security_protocol"] == protocol
    if sasl:
        assert options["sasl_mechanism"] == mechanism
        assert options["sasl_plain_username"] == "moderator"
        assert options["sasl_plain_password"] == PASSWORD
    else:
        assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & options.keys()
    if tls:
        context = options["ssl_context"]
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        issuers = [dict(x[0] for x in ca["subject"]) for ca in context.get_ca_certs()]
        assert {"commonName": "guardstream-test-ca"} in issuers
    else:
        assert "ssl_context" not in options


def test_plaintext_is_the_default_and_bare_bootstrap_strings_stay_plain() -> None:
    assert aiokafka_options(KafkaConfig()) == {"security_protocol": "PLAINTEXT"}
    assert client_options("h:1") == {"bootstrap_servers": "h:1"}
    assert faust_credentials(KafkaConfig()) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"security_protocol": "SASL_SSH"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"sasl_mechanism": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"sasl_password": Secret()}, "needs KAFKA_SASL_USERNAME and _PASSWORD"),
        ({"sasl_username": None}, "needs KAFKA_SASL_USERNAME and _PASSWORD"),
        ({"ssl_keyfile": None}, "go together"),
        ({"ssl_cafile": "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"),
        ({"ssl_key_password": Secret("wrong-pass-0000")}, "Kafka TLS settings"),
    ],
)
def test_bad_security_settings_fail_clearly_without_secrets(
    certs: Certs, changes: dict[str, Any], message: str
) -> None:
    kafka = replace(secured(certs), **changes)
    with pytest.raises(ConfigError, match=message) as caught:
        aiokafka_options(kafka)
    for text in (str(caught.value), repr(caught.value)):
        assert PASSWORD not in text and KEY_PASSWORD not in text and "wrong-pass-0000" not in text
    with pytest.raises(ConfigError):
        faust_credentials(kafka)


def test_faust_credentials_map_onto_the_same_aiokafka_options(certs: Certs) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    for protocol in ("SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        kafka = secured(certs, protocol, "SCRAM-SHA-256")
        credentials = faust_credentials(kafka)
        assert PASSWORD not in repr(credentials)
        faust_side = credentials_to_aiokafka_auth(credentials)
        ours = aiokafka_options(kafka)
        assert faust_side["security_protocol"] == ours["security_protocol"] == protocol
        for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
            assert faust_side.get(key) == ours.get(key)
        assert (faust_side.get("ssl_context") is None) == ("ssl_context" not in ours)


# --- every client the service creates gets the options -------------------------------------------


class _Stop(Exception):
    """Raised by the spy instead of connecting anywhere."""


@pytest.fixture
def client_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every aiokafka producer, consumer and admin client builds one ``AIOKafkaClient`` with the
    connection options; record them and stop there."""
    seen: list[dict[str, Any]] = []

    def spy(self: Any, **kwargs: Any) -> None:
        seen.append(kwargs)
        raise _Stop

    monkeypatch.setattr(aiokafka.client.AIOKafkaClient, "__init__", spy)
    yield seen


def _run(make: Callable[[], Any]) -> None:
    async def go() -> None:
        result = make()
        if hasattr(result, "__anext__"):
            await result.__anext__()
        elif asyncio.iscoroutine(result):
            await result

    with pytest.raises(_Stop):
        asyncio.run(go())


def _client_factories(settings: Settings) -> dict[str, Callable[[], Any]]:
    from unittest import mock

    from loadtest.common import observe, produce
    from streams.app import create_app
    from streams.client import read_topic, send_lines
    from streams.console.corrections import CorrectionsPublisher
    from streams.engines import create_engine
    from streams.replay.diff import load_originals
    from streams.replay.plan import load_run, plan_run, save_run
    from streams.replay.runner import run_replay
    from streams.replay.runs import RunSpec
    from streams.replay.scan import consumer_for
    from streams.store.sink import StoreSink
    from streams.topics import ensure_topics

    kafka, topics = settings.kafka, settings.topics
    mock_database = mock.Mock()  # the sink's consumer is built before any database access
    engine = create_engine(EngineConfig(spec="fake:instant"))
    spec = RunSpec(
        run_id="r", topic="t", ranges={0: (0, 1)}, time_from=None, time_until=None,
        engine="fake:instant", priority=0, publish_live=False,
    )  # fmt: skip

    async def console_producer() -> None:
        publisher = CorrectionsPublisher(mock.Mock(), kafka, settings.console.corrections_topic)
        with mock.patch("streams.topics.ensure_named_topics", mock.AsyncMock()):
            await publisher._ensure_producer()

    async def faust_producer() -> None:
        create_app(settings, engine).producer._new_producer()

    async def faust_consumer() -> None:
        app = create_app(settings, engine)
        app.consumer._thread._create_worker_consumer(app.transport)

    return {
        "worker consumer (faust)": faust_consumer,
        "worker producer (faust)": faust_producer,
        "admin (ensure_topics)": lambda: ensure_topics(kafka, topics),
        "send": lambda: send_lines(kafka, topics.events, [b"{}"]),
        "tail": lambda: read_topic(kafka, topics.archive),
        "replay consumer": lambda: consumer_for(kafka),
        "replay plan": lambda: plan_run(
            kafka,
            run_id="r",
            topic="t",
            time_from=None,
            time_until=None,
            engine="e",
            priority=0,
            publish_live=False,
        ),  # fmt: skip
        "replay run record": lambda: save_run(kafka, topics.replay_runs, spec),
        "replay resume": lambda: load_run(kafka, topics.replay_runs, "r"),
        "replay run": lambda: run_replay(settings, spec, engine, originals={}),
        "diff": lambda: load_originals(kafka, topics.archive),
        "store sink consumer": lambda: StoreSink(settings, mock_database)._consumer(),
        "console corrections producer": console_producer,
        "loadtest producer": lambda: produce(kafka, "t", []),
        "loadtest observer": lambda: observe(kafka, "t", 1, timeout_s=1),
    }


def test_every_client_gets_the_security_options(certs: Certs, client_spy: list[dict[str, Any]]) -> None:
    settings = replace(Settings(), kafka=secured(certs, "SASL_SSL", "SCRAM-SHA-256"))
    factories = _client_factories(settings)
    for name, make in factories.items():
        client_spy.clear()
        _run(make)
        assert client_spy, name
        options = client_spy[0]
        assert options["bootstrap_servers"] in ("127.0.0.1:1", ["127.0.0.1:1"]), name
        assert options["security_protocol"] == "SASL_SSL", name
        assert options["sasl_mechanism"] == "SCRAM-SHA-256", name
        assert options["sasl_plain_username"] == "moderator", name
        assert options["sasl_plain_password"] == PASSWORD, name
        assert isinstance(options["ssl_context"], ssl.SSLContext), name
    assert len(factories) == 15


def test_the_spy_sees_plaintext_when_security_is_off(client_spy: list[dict[str, Any]]) -> None:
    """The check above can fail: with default settings the same clients get PLAINTEXT."""
    settings = replace(Settings(), kafka=KafkaConfig(bootstrap="127.0.0.1:1"))
    for name, make in _client_factories(settings).items():
        client_spy.clear()
        _run(make)
        assert client_spy[0].get("security_protocol", "PLAINTEXT") == "PLAINTEXT", name
        assert client_spy[0].get("sasl_plain_password") is None, name
