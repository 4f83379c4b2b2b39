"""An aiokafka consumer that applies records through an EventPipeline and commits afterwards."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.deadletter import ConsumedRecord
from amiflow_runtime.kafka import client_options
from amiflow_runtime.metrics import forget_lag, note_lag
from amiflow_runtime.pipeline import EventPipeline

log = logging.getLogger("amiflow.consumer")


def consumed(message: ConsumerRecord[bytes, bytes]) -> ConsumedRecord:
    """The runtime's view of an aiokafka record."""
    return ConsumedRecord(
        topic=message.topic, partition=message.partition, offset=message.offset,
        key=message.key, value=message.value, headers=list(message.headers or ()),
    )


@dataclass
class InboxConsumer:
    """Consumes `topics` as group `pipeline.consumer`; offsets are committed after each batch is applied."""

    settings: ServiceSettings
    topics: Sequence[str]
    pipeline: EventPipeline
    _consumer: AIOKafkaConsumer | None = None
    _stopping: bool = False
    ready: bool = False

    async def run(self) -> None:
        """Consume until `stop`; a failed record is dead-lettered by the pipeline, never fatal."""
        self._consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=self.pipeline.consumer,
            client_id=f"{self.pipeline.consumer}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a new consumer group reads the log of record from the start
            isolation_level="read_committed",
            max_poll_records=self.settings.consumer_batch_size,
        )
        # As the constructor's topics would, plus a listener: partitions moved away take their lag gauge along.
        self._consumer.subscribe(list(self.topics), listener=_ForgetRevokedLag(self.pipeline.consumer))
        try:
            await self._consumer.start()  # refused ACLs raise here; the finally still closes the connections
            self.ready = True
            log.info("consumer %s reading %s", self.pipeline.consumer, ", ".join(self.topics))
            while not self._stopping:
                batches = await self._consumer.getmany(timeout_ms=500,
                                                       max_records=self.settings.consumer_batch_size)
                for partition, messages in batches.items():
                    await self._apply_partition(partition, messages)
        finally:
            self.ready = False
            await self._consumer.stop()

    async def _apply_partition(self, partition: TopicPartition,
                               messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        assert self._consumer is not None
        await self.pipeline.apply_batch([consumed(message) for message in messages])
        await self._consumer.commit({partition: messages[-1].offset + 1})
        note_lag(self.pipeline.consumer, partition.topic, partition.partition, messages[-1].offset + 1,
                 self._consumer.highwater(partition))

    def stop(self) -> None:
        self._stopping = True


class _ForgetRevokedLag(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions moved to another consumer take their lag gauge with them."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        forget_lag([self.consumer], [(tp.topic, tp.partition) for tp in revoked])

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        return None
