"""Dead letters: a record that cannot be applied goes to the service's DLQ topic, raw and explained."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaProducer

from amiflow_runtime.metrics import EVENTS_DEAD_LETTERED

log = logging.getLogger("amiflow.deadletter")

MAX_REASON_BYTES = 4000


@dataclass(frozen=True)
class ConsumedRecord:
    """A record as a consumer read it: the unit of processing and of dead-lettering."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class DeadLetters:
    """Publishes failed records to one dead-letter topic and waits for the broker's ack."""

    producer: AIOKafkaProducer
    topic: str
    consumer: str

    async def publish(self, record: ConsumedRecord, reason: str, kind: str, now: datetime) -> None:
        """Keep the raw bytes and the original headers; add why, where from and when."""
        headers = [
            *[(k, v) for k, v in record.headers if not k.startswith("dlq.")],
            ("dlq.reason", _clipped(reason)),
            ("dlq.kind", kind.encode()),
            ("dlq.consumer", self.consumer.encode()),
            ("dlq.source.topic", record.topic.encode()),
            ("dlq.source.partition", str(record.partition).encode()),
            ("dlq.source.offset", str(record.offset).encode()),
            ("dlq.failed_at", now.isoformat().encode()),
        ]
        await self.producer.send_and_wait(self.topic, value=record.value, key=record.key, headers=headers)
        EVENTS_DEAD_LETTERED.labels(self.consumer, kind).inc()
        log.warning("dead-lettered %s[%d]@%d to %s: %s", record.topic, record.partition, record.offset,
                    self.topic, reason)


def _clipped(reason: str) -> bytes:
    """The reason as UTF-8 that DLQ tools can decode: cut at a character boundary, lone surrogates escaped."""
    encoded = reason.encode("utf-8", "backslashreplace")[:MAX_REASON_BYTES]
    return encoded.decode("utf-8", "ignore").encode()
