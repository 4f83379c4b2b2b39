"""Baseline B0: what this machine and this broker move with no amiflow code at all.

Raw aiokafka producing reading-sized messages to a topic shaped like amiflow.ingest.readings (same
partitions, keys spread over meters) with the pipeline's producer settings (idempotent, acks=all,
lz4, linger 5 ms), and a consumer in another process reading them back. Bytes only: no decoding, no
database. The pipeline's throughput is reported as a ratio of the end-to-end rate measured here.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.kafka import client_options, ensure_topics, make_producer
from amiflow_schemas import encode_event, new_envelope
from amiflow_schemas.events.readings import ReadingReceived, ReadingSource, RegisterValue
from amiflow_schemas.primitives import Unit, Utility
from amiflow_schemas.topics import TopicSpec, topic_named

from amiflow_bench.environment import BenchEnv

READINGS = topic_named("amiflow.ingest.readings")
MESSAGES = {"full": 400_000, "quick": 20_000}


def reading_bytes(meter_id: str = "BENCH-WM-000001") -> bytes:
    """A ReadingReceived as ingest puts it on the topic: the size the baseline's messages have."""
    reading = ReadingReceived(meter_id=meter_id, utility=Utility.WATER, measured_at=datetime.now(UTC),
                              registers=(RegisterValue(register="total", value=Decimal("1234.567"), unit=Unit.M3),),
                              source=ReadingSource.HTTP, gateway_id="BENCH-DTU-0001")
    now = datetime.now(UTC)
    return encode_event(new_envelope(reading, event_id=uuid.uuid4(), tenant_id="demo", key=meter_id,
                                     occurred_at=now, recorded_at=now, producer="ingest"))


def measure(env: BenchEnv, scale: str) -> dict[str, Any]:
    count = MESSAGES[scale]
    topic = f"bench.b0.{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(name=topic, key="meter_id", partitions=READINGS.partitions, cleanup_policy="delete",
                     retention_ms=3_600_000, event_types=(), producer="bench", description="B0 baseline",
                     public=False)
    settings = ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=env.bootstrap)
    asyncio.run(ensure_topics(settings, [spec]))
    payload = reading_bytes()
    context = multiprocessing.get_context("spawn")
    ready, results = context.Event(), context.Queue()
    consumer = context.Process(target=_consume, args=(env.bootstrap, topic, spec.partitions, count, ready, results))
    consumer.start()
    if not ready.wait(60):
        consumer.kill()
        raise RuntimeError("the B0 consumer did not start")
    produced = asyncio.run(_produce(settings, topic, payload, count))
    consumed = results.get(timeout=600)
    consumer.join(30)
    seconds = consumed["last_at"] - produced["first_at"]
    return {
        "messages": count, "message_bytes": len(payload), "partitions": spec.partitions,
        "producer": "aiokafka idempotent, acks=all, lz4, linger 5 ms (amiflow_runtime.kafka.make_producer)",
        "produce_per_s": round(count / produced["seconds"]),
        "consume_per_s": round(count / (consumed["last_at"] - consumed["first_at"])),
        "end_to_end_per_s": round(count / seconds),
        "end_to_end_s": round(seconds, 2),
        "mb_per_s": round(count * len(payload) / seconds / 1e6, 1),
        "received": consumed["received"],
    }


async def _produce(settings: ServiceSettings, topic: str, payload: bytes, count: int) -> dict[str, float]:
    producer = make_producer(settings, "bench-b0")
    await producer.start()
    try:
        keys = [f"BENCH-WM-{n:06d}".encode() for n in range(4096)]
        first = time.time()
        started = time.perf_counter()
        pending = []
        for n in range(count):
            pending.append(await producer.send(topic, value=payload, key=keys[n % len(keys)]))
            if len(pending) >= 10_000:  # bounded in flight, as a relay's batches are
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        return {"first_at": first, "seconds": time.perf_counter() - started}
    finally:
        await producer.stop()


def _consume(bootstrap: str, topic: str, partitions: int, count: int, ready: Any, results: Any) -> None:
    results.put(asyncio.run(_consume_all(bootstrap, topic, partitions, count, ready)))


async def _consume_all(bootstrap: str, topic: str, partitions: int, count: int, ready: Any) -> dict[str, float]:
    settings = ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap)
    consumer = AIOKafkaConsumer(**client_options(settings), client_id="bench-b0-consumer", enable_auto_commit=False,
                                isolation_level="read_committed", max_poll_records=5_000)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        ready.set()
        received, first, last = 0, 0.0, 0.0
        while received < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5_000)
            for messages in batches.values():
                if messages and not first:
                    first = time.time()
                received += len(messages)
            if batches:
                last = time.time()
        return {"received": received, "first_at": first, "last_at": last}
    finally:
        await consumer.stop()
