"""Kafka security settings → client options: the one place that translates them.

Every Kafka client the service creates takes its options from here: aiokafka's
producers, consumers and admin clients through :func:`aiokafka_options` /
:func:`client_options`, the Faust app through :func:`faust_credentials` (Faust
hands them to the aiokafka consumer and producer it makes). From
``GUARDSTREAM_KAFKA_SECURITY_PROTOCOL`` (``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT``,
``SASL_SSL``), ``_SASL_MECHANISM`` (``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``),
``_SASL_USERNAME`` / ``_SASL_PASSWORD`` and ``_SSL_CAFILE`` / ``_SSL_CERTFILE`` /
``_SSL_KEYFILE`` / ``_SSL_KEY_PASSWORD``. The passwords stay :class:`~streams.secret.Secret`
until they are handed to the client library; nothing here logs them or puts them in an
error message.

Helpers that used to take a bootstrap string take a :data:`KafkaTarget`: a bare
``host:port`` string (plaintext, for tests and the embedded broker) or the
:class:`~streams.config.KafkaConfig` with its security settings.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from streams.config import KafkaConfig
from streams.errors import ConfigError

__all__ = [
    "MECHANISMS",
    "PROTOCOLS",
    "KafkaTarget",
    "aiokafka_options",
    "bootstrap_of",
    "client_options",
    "faust_credentials",
    "security_problems",
    "ssl_context",
]

logger = logging.getLogger(__name__)

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

KafkaTarget = str | KafkaConfig


def _uses_tls(kafka: KafkaConfig) -> bool:
    return kafka.security_protocol in {"SSL", "SASL_SSL"}


def _uses_sasl(kafka: KafkaConfig) -> bool:
    return kafka.security_protocol in {"SASL_PLAINTEXT", "SASL_SSL"}


def security_problems(kafka: KafkaConfig) -> list[str]:
    """What is wrong with the security settings (empty: nothing). Never includes a secret."""
    protocol, mechanism = kafka.security_protocol, kafka.sasl_mechanism
    if protocol not in PROTOCOLS:
        return [f"KAFKA_SECURITY_PROTOCOL={protocol!r} (one of {', '.join(PROTOCOLS)})"]
    problems = []
    if _uses_sasl(kafka):
        if mechanism not in MECHANISMS:
            problems.append(f"KAFKA_SASL_MECHANISM={mechanism!r} (one of {', '.join(MECHANISMS)})")
        if not kafka.sasl_username or not kafka.sasl_password:
            problems.append(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and _PASSWORD")
    if _uses_tls(kafka) and bool(kafka.ssl_certfile) != bool(kafka.ssl_keyfile):
        problems.append("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (a client certificate and key)")
    return problems


def ssl_context(kafka: KafkaConfig) -> ssl.SSLContext | None:
    """A client TLS context (server certificate and host name verified), or None without TLS."""
    if not _uses_tls(kafka):
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=kafka.ssl_cafile or None)
        if kafka.ssl_certfile:
            password = kafka.ssl_key_password.reveal() or None
            context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile, password=password)
    except OSError as exc:  # ssl.SSLError included; names the files, never the key password
        files = ", ".join(f for f in (kafka.ssl_cafile, kafka.ssl_certfile, kafka.ssl_keyfile) if f)
        raise ConfigError(f"Kafka TLS settings ({files or 'system CA bundle'}): {exc}") from None
    return context


def _checked(kafka: KafkaConfig) -> KafkaConfig:
    problems = security_problems(kafka)
    if problems:
        raise ConfigError("inconsistent settings: " + "; ".join(f"GUARDSTREAM_{p}" for p in problems))
    return kafka


def aiokafka_options(kafka: KafkaConfig) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer`` / ``AIOKafkaConsumer`` / ``AIOKafkaAdminClient``."""
    _checked(kafka)
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if _uses_sasl(kafka):
        options.update(
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_plain_username=kafka.sasl_username,
            sasl_plain_password=kafka.sasl_password.reveal(),
        )
    return options


def bootstrap_of(target: KafkaTarget) -> str:
    return target if isinstance(target, str) else target.bootstrap


def client_options(target: KafkaTarget) -> dict[str, Any]:
    """``bootstrap_servers`` plus the security options (none for a bare bootstrap string)."""
    if isinstance(target, str):
        return {"bootstrap_servers": target}
    return {"bootstrap_servers": target.bootstrap, **aiokafka_options(target)}


def faust_credentials(kafka: KafkaConfig) -> Any:
    """The Faust app's ``broker_credentials`` (None for PLAINTEXT).

    Faust maps ``SASLCredentials`` onto aiokafka's ``security_protocol`` (``SASL_SSL``
    when it has an ``ssl_context``, else ``SASL_PLAINTEXT``), ``sasl_mechanism`` and
    ``sasl_plain_username``/``_password``, and ``SSLCredentials`` onto ``SSL`` with its
    context (``faust.transport.drivers.aiokafka.credentials_to_aiokafka_auth``).
    """
    import faust

    _checked(kafka)
    context = ssl_context(kafka)
    if _uses_sasl(kafka):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.reveal(),
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
