"""Topic administration: the service creates its topics at start (Faust declares none of them)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from streams.config import KafkaConfig, TopicNames
from streams.errors import BrokerError
from streams.kafka_security import aiokafka_options

__all__ = ["ensure_named_topics", "ensure_topics"]

logger = logging.getLogger(__name__)


async def ensure_topics(kafka: KafkaConfig, topics: TopicNames, *, include_input: bool = True) -> list[str]:
    """Create the input and output topics that do not exist yet; returns the ones created.

    The input topic is created too so a fresh cluster works out of the box; on a
    managed cluster where it already exists nothing changes. Raises
    :class:`BrokerError` with the bootstrap address when the broker is unreachable.
    """
    wanted = ((topics.events,) if include_input else ()) + topics.outputs()
    return await ensure_named_topics(kafka, wanted)


async def ensure_named_topics(kafka: KafkaConfig, names: Sequence[str]) -> list[str]:
    """Create the topics of ``names`` that do not exist yet; returns the ones created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap,
        client_id=f"{kafka.client_id}-admin",
        request_timeout_ms=int(kafka.request_timeout_s * 1000),
        **aiokafka_options(kafka),
    )
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise BrokerError(f"cannot reach a Kafka broker at {kafka.bootstrap} ({exc})") from exc
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(names) if t not in existing]
        if missing:
            new = [NewTopic(t, kafka.partitions, kafka.replication_factor) for t in missing]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # another worker created it meanwhile
            logger.info('created topics topics="%s" partitions=%d', ",".join(missing), kafka.partitions)
        return missing
    except KafkaError as exc:
        raise BrokerError(f"topic administration failed on {kafka.bootstrap}: {exc!r}") from exc
    finally:
        await admin.close()
