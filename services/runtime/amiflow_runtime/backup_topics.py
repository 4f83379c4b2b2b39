"""Copy topic records to record files and back, and carry consumer group offsets across.

Backup reads every partition from its earliest retained offset up to the high watermark taken
beforehand (read_committed, like the services' consumers); what arrives later is left for the next
backup. Restore produces each partition's records with the idempotent producer, partition given
explicitly, in offset order, with their key, value, headers and timestamp; the target's offsets are
then contiguous from its end offset, which is what lets PositionMap translate the consumer groups.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from amiflow_runtime.backup_frames import RecordFileWriter, TopicRecord, read_record_file
from amiflow_runtime.backup_manifest import (
    BackupRefused,
    CommittedOffset,
    GroupOffsets,
    PartitionBackup,
    PositionMap,
    TopicBackup,
)
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.kafka import TopicLike, client_options, ensure_topics, make_producer

log = logging.getLogger("amiflow.backup")

STALL_S = 120.0  # no record for this long while partitions are still short of their watermark: give up
SEND_WINDOW = 5000  # records in flight before the restore waits for the broker's acknowledgements

Marks = dict[TopicPartition, tuple[int, int]]  # (earliest retained offset, high watermark)


@dataclass(frozen=True)
class TopicSettings:
    """A topic as the manifest describes it, in the shape ensure_topics takes."""

    name: str
    partitions: int
    cleanup_policy: str
    retention_ms: int


@dataclass(frozen=True)
class RestoredTopic:
    """What a restore did to one topic."""

    name: str
    partitions: int
    records: int


def partition_file(topic: str, partition: int) -> str:
    """Where a partition's records go inside the set."""
    return f"topics/{topic}/partition-{partition:04d}.records.gz"


def _reader(settings: ServiceSettings, client_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest", isolation_level="read_committed", client_id=client_id)


async def _partitions(settings: ServiceSettings, names: Iterable[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="amiflow-backup")
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
    finally:
        await admin.close()
    missing = sorted(t["topic"] for t in described if t["error_code"] != 0 or not t["partitions"])
    if missing:
        raise BackupRefused(f"topic(s) not on the cluster: {', '.join(missing)} (run `amiflow topics`?)")
    return {t["topic"]: len(t["partitions"]) for t in described}


async def offset_marks(settings: ServiceSettings, names: Iterable[str]) -> Marks:
    """Every partition's earliest retained offset and high watermark (last stable offset), now."""
    counts = await _partitions(settings, names)
    tps = [TopicPartition(name, p) for name, count in counts.items() for p in range(count)]
    consumer = _reader(settings, "amiflow-backup-marks")
    await consumer.start()
    try:
        starts, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp: (starts[tp], ends[tp]) for tp in tps}


async def capture_group_offsets(settings: ServiceSettings, topics: Iterable[str]) -> tuple[GroupOffsets, ...]:
    """Every consumer group's committed offsets on `topics`, as they stand now."""
    wanted = set(topics)
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="amiflow-backup")
    await admin.start()
    try:
        groups = sorted({g[0] for g in await admin.list_consumer_groups() if g[1] in ("consumer", "")})
        captured = []
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group)
            offsets = tuple(CommittedOffset(topic=tp.topic, partition=tp.partition, offset=om.offset,
                                            metadata=om.metadata or "")
                            for tp, om in sorted(committed.items()) if tp.topic in wanted and om.offset >= 0)
            if offsets:
                captured.append(GroupOffsets(group=group, offsets=offsets))
        return tuple(captured)
    finally:
        await admin.close()


def _record_of(message: ConsumerRecord[bytes, bytes]) -> TopicRecord:
    return TopicRecord(offset=message.offset, timestamp_ms=message.timestamp, key=message.key, value=message.value,
                       headers=tuple((name, value) for name, value in message.headers or ()))


async def _drain(consumer: AIOKafkaConsumer, marks: Marks, writers: Mapping[TopicPartition, RecordFileWriter]) -> None:
    pending = {tp for tp, (start, end) in marks.items() if end > start}
    last_progress = time.monotonic()
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=10_000)
        for tp, messages in batches.items():
            for message in messages:
                if message.offset < marks[tp][1]:
                    writers[tp].write(_record_of(message))
        # Every pending partition, not only those with records: a tail of transaction markers or
        # compacted-away batches moves the position to the watermark without yielding a record.
        done = {tp for tp in pending if await consumer.position(tp) >= marks[tp][1]}
        if done:
            pending -= done
            consumer.pause(*done)
        if batches or done:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > STALL_S:
            short = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(pending))
            raise BackupRefused(f"no records for {STALL_S:.0f} s while {short} are short of their watermark")


async def copy_topics(settings: ServiceSettings, specs: Iterable[TopicLike], marks: Marks,
                      folder: Path) -> tuple[TopicBackup, ...]:
    """Write every partition's records below its watermark to its record file."""
    writers = {tp: RecordFileWriter(folder / partition_file(tp.topic, tp.partition), tp.topic, tp.partition)
               for tp in sorted(marks)}
    consumer = _reader(settings, "amiflow-backup")
    try:
        await consumer.start()
        try:
            consumer.assign(list(marks))
            await consumer.seek_to_beginning(*marks)
            await _drain(consumer, marks, writers)
        finally:
            await consumer.stop()
    except BaseException:
        for writer in writers.values():
            writer.abandon()
        raise
    for writer in writers.values():
        writer.close()
    topics = []
    for spec in specs:
        parts = tuple(PartitionBackup(partition=tp.partition, start_offset=marks[tp][0], end_offset=marks[tp][1],
                                      records=writers[tp].count, file=partition_file(tp.topic, tp.partition))
                      for tp in sorted(marks) if tp.topic == spec.name)
        topics.append(TopicBackup(name=spec.name, cleanup_policy=spec.cleanup_policy,
                                  retention_ms=spec.retention_ms, partitions=parts))
    return tuple(topics)


async def _target_marks(settings: ServiceSettings, topics: Iterable[TopicBackup]) -> Marks:
    topics = list(topics)
    await ensure_topics(settings, [TopicSettings(t.name, len(t.partitions), t.cleanup_policy, t.retention_ms)
                                   for t in topics])
    counts = await _partitions(settings, [t.name for t in topics])
    short = [f"{t.name} has {counts[t.name]}, the backup {len(t.partitions)}" for t in topics
             if counts[t.name] < len(t.partitions)]
    if short:
        raise BackupRefused("target topic(s) with fewer partitions than the backup: " + "; ".join(short))
    return await offset_marks(settings, [t.name for t in topics])


def _occupied(marks: Marks) -> list[str]:
    topics: dict[str, int] = {}
    for tp, (start, end) in marks.items():
        if end > start:
            topics[tp.topic] = topics.get(tp.topic, 0) + end - start
    return [f"{name} ({count} records)" for name, count in sorted(topics.items())]


async def _produce_partition(producer: Any, path: Path, topic: str, partition: int,
                             positions: PositionMap | None) -> int:
    in_flight: list[Any] = []
    count = 0
    for record in read_record_file(path, topic, partition):
        in_flight.append(await producer.send(
            topic, value=record.value, key=record.key, partition=partition,
            timestamp_ms=record.timestamp_ms if record.timestamp_ms >= 0 else None, headers=list(record.headers)))
        if positions is not None:
            positions.observe(record.offset)
        count += 1
        if len(in_flight) >= SEND_WINDOW:
            for future in in_flight:
                await future
            in_flight.clear()
    for future in in_flight:
        await future  # raises the broker's error for any record that did not make it
    return count


def _committed_by_partition(groups: Iterable[GroupOffsets]) -> dict[TopicPartition, set[int]]:
    wanted: dict[TopicPartition, set[int]] = {}
    for group in groups:
        for c in group.offsets:
            wanted.setdefault(TopicPartition(c.topic, c.partition), set()).add(c.offset)
    return wanted


async def restore_topics(settings: ServiceSettings, folder: Path, topics: Iterable[TopicBackup],
                         groups: Iterable[GroupOffsets], into_non_empty: bool) -> list[RestoredTopic]:
    """Produce the backed-up records into the target topics (created if missing), then the groups' offsets."""
    topics, groups = list(topics), list(groups)
    before = await _target_marks(settings, topics)
    occupied = _occupied(before)
    if occupied and not into_non_empty:
        raise BackupRefused("target topic(s) not empty: " + ", ".join(occupied) +
                            "; restore into empty topics or pass --into-non-empty-topics to append")
    committed = _committed_by_partition(groups)
    positions = {tp: PositionMap(offsets) for tp, offsets in committed.items()}
    producer = make_producer(settings, "amiflow-restore")
    await producer.start()
    restored, produced = [], {}
    try:
        for topic in topics:
            for part in topic.partitions:
                tp = TopicPartition(topic.name, part.partition)
                produced[tp] = await _produce_partition(producer, folder / part.file, topic.name, part.partition,
                                                        positions.get(tp))
            restored.append(RestoredTopic(topic.name, len(topic.partitions),
                                          sum(produced[TopicPartition(topic.name, p.partition)]
                                              for p in topic.partitions)))
    finally:
        await producer.stop()
    await _check_contiguous(settings, before, produced)
    await _commit_groups(settings, groups, {tp: before[tp][1] for tp in produced}, positions)
    return restored


async def _check_contiguous(settings: ServiceSettings, before: Marks, produced: Mapping[TopicPartition, int]) -> None:
    after = await offset_marks(settings, sorted({tp.topic for tp in produced}))
    moved = [f"{tp.topic}[{tp.partition}]" for tp, count in produced.items() if after[tp][1] != before[tp][1] + count]
    if moved:
        # Someone else wrote during the restore: the group offsets would point at the wrong records.
        raise BackupRefused("other records arrived in " + ", ".join(moved) + " during the restore; stop every "
                            "producer (the services) while restoring; consumer group offsets were not restored")


async def _commit_groups(settings: ServiceSettings, groups: Iterable[GroupOffsets],
                         bases: Mapping[TopicPartition, int], positions: Mapping[TopicPartition, PositionMap]) -> None:
    for group in groups:
        offsets = {}
        for c in group.offsets:
            tp = TopicPartition(c.topic, c.partition)
            if tp in bases:
                offsets[tp] = OffsetAndMetadata(positions[tp].position(c.offset, bases[tp]), c.metadata)
        if offsets:
            await _commit(settings, group.group, offsets)


async def _commit(settings: ServiceSettings, group: str, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
    # Manual assignment: the consumer commits as a "simple" consumer and never joins the group.
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False,
                                client_id="amiflow-restore")
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    except (CommitFailedError, KafkaError) as exc:
        raise BackupRefused(f"consumer group {group}: committing its offsets failed ({exc}); is it running? "
                            "stop the services before restoring") from exc
    finally:
        await consumer.stop()
