"""The Faust floor: the worker's own Faust app and intake with no moderation at all.

Run by ``python -m loadtest throughput`` as a third side beside the raw aiokafka pass-through
and the pipeline: the same app settings (:func:`streams.app.new_app`) and the same intake
(:func:`streams.app.queued_batches`) as ``guardstream worker``; per taken batch it publishes
one record of the archive record's size per event, waits for the broker's acks, then acks
the events (as the raw baseline does). The pipeline cannot go faster than this; the gap
between the two is what moderating costs (event → prompt → engine → parse → verdict → record).

    python -m loadtest.floor OUTPUT_BYTES   (settings from GUARDSTREAM_* variables)
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

import faust

from streams.app import new_app, queued_batches
from streams.config import Settings

__all__ = ["READY", "main"]

READY = "floor assigned"

logger = logging.getLogger("loadtest.floor")


def main(output_bytes: int) -> None:
    settings = Settings.from_env(dict(os.environ))
    app = new_app(settings)
    events_topic = app.topic(settings.topics.events, key_type=bytes, value_type=bytes)
    target = settings.topics.archive

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any, **_: Any) -> None:
        logger.warning("%s partitions=%d", READY, len(assigned))

    @app.agent(events_topic, name="loadtest.floor")
    async def floor(stream: Any) -> None:
        value = b"x" * output_bytes
        async for events in queued_batches(app, stream.channel, settings.batch.max_in_flight):
            sent = [
                await app.producer.send(target, event.message.key, value, None, None, None)
                for event in events
            ]
            await asyncio.gather(*sent)
            for event in events:
                event.ack()

    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main(int(sys.argv[1]))
