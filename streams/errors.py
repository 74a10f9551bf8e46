"""GuardStream's exception tree.

Exceptions are for system failures. A guard output that cannot be parsed is a
normal result (``Verdict.status``), and bad input is a ``ContractError`` that the
agent turns into a dead-letter record::

    StreamsError
    ├── ConfigError            invalid settings or CLI arguments
    ├── ContractError          an input event we cannot decode or accept
    ├── EngineError            the guard engine failed for one prompt
    │   ├── EngineTimeout      no answer within the configured time (retryable)
    │   ├── EngineUnavailable  cannot reach / load the engine (retryable)
    │   │   └── EngineDead     an in-process engine died: the worker must restart
    │   ├── EngineOverloaded   told to back off, carries retry_after (retryable)
    │   └── EngineRejected     the engine refuses this prompt (not retryable)
    ├── ModelNotFound          model weights not available locally, no way to fetch them
    ├── BrokerError            the Kafka broker cannot be reached or used
    └── PublishError           an output record was not acknowledged by the broker
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "ContractError",
    "EngineDead",
    "EngineError",
    "EngineOverloaded",
    "EngineRejected",
    "EngineTimeout",
    "EngineUnavailable",
    "ModelNotFound",
    "PublishError",
    "StreamsError",
]


class StreamsError(Exception):
    """Base class of every GuardStream error."""


class ConfigError(StreamsError):
    """Settings or command-line arguments are invalid."""


class ContractError(StreamsError):
    """An input record breaks the chat-event contract.

    ``reason`` is a short machine-readable code (``not_json``, ``invalid_utf8``,
    ``missing_field``, ``wrong_type``, ``oversize``, ...) published on the DLQ.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class EngineError(StreamsError):
    """The guard engine failed to produce an output for a prompt."""

    retryable: bool = True


class EngineTimeout(EngineError):
    """The engine did not answer within the configured timeout."""


class EngineUnavailable(EngineError):
    """The engine cannot be reached (connection refused, server gone, 5xx)."""


class EngineDead(EngineUnavailable):
    """The in-process engine failed for good; nothing but a restart brings it back."""


class EngineOverloaded(EngineError):
    """The engine asked us to back off."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineRejected(EngineError):
    """The engine will never accept this prompt (too long, unknown recording)."""

    retryable = False


class ModelNotFound(StreamsError):
    """Model weights are neither local nor downloadable here."""


class BrokerError(StreamsError):
    """The Kafka broker is unreachable or refused an administrative call."""


class PublishError(StreamsError):
    """An output record was not acknowledged by the broker."""
