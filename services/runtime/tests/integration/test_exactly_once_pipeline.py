"""The runtime's consume → apply → outbox → relay path against the real broker and databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from amiflow_runtime.clock import SystemClock
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.consumer import InboxConsumer
from amiflow_runtime.db import ExactDecimal, inbox_table, make_engine, outbox_table, sessions
from amiflow_runtime.deadletter import DeadLetters
from amiflow_runtime.outbox import OutboxRelay
from amiflow_runtime.pipeline import EventPipeline
from amiflow_runtime.telemetry import configure_tracing
from amiflow_runtime.testing import unique
from amiflow_schemas import Envelope, encode_event, envelope_headers, new_envelope
from amiflow_schemas.events.readings import ReadingReceived, ReadingValidated, ValidationStatus
from amiflow_schemas.topics import topic_for_event
from sqlalchemy import Column, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

pytestmark = pytest.mark.integration

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)
applied = Table("applied", metadata, Column("event_id", String(36), primary_key=True),
                Column("meter_id", String(64)), Column("value", ExactDecimal()))

READINGS = topic_for_event("ReadingReceived").name
VALIDATED = topic_for_event("ReadingValidated").name
DLQ = "amiflow.dlq.vee"


def reading(meter_id: str, value: str, tenant: str) -> Envelope[Any]:
    measured = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    payload = ReadingReceived.model_validate({
        "meter_id": meter_id, "utility": "water", "measured_at": measured,
        "registers": [{"register": "total", "value": value, "unit": "m3"}], "source": "http", "gateway_id": None,
    })
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=tenant, key=meter_id, occurred_at=measured,
                        recorded_at=measured, producer="test")


async def record_and_validate(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
    """The test's handler: one row per applied event, one ReadingValidated out."""
    received: ReadingReceived = envelope.payload
    await session.execute(insert(applied).values(event_id=str(envelope.event_id), meter_id=received.meter_id,
                                                 value=received.registers[0].value))
    out = ReadingValidated(
        meter_id=received.meter_id, utility=received.utility, measured_at=received.measured_at,
        registers=received.registers, consumption=None, consumption_unit=None, previous_measured_at=None,
        status=ValidationStatus.ACTUAL, estimation_method=None, source_event_id=envelope.event_id,
    )
    return [new_envelope(out, event_id=uuid.uuid4(), tenant_id=envelope.tenant_id, key=received.meter_id,
                         occurred_at=received.measured_at, recorded_at=received.measured_at, producer="test",
                         causation_id=envelope.event_id)]


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()


@pytest.fixture(scope="module", autouse=True)
def tracing() -> None:
    configure_tracing("runtime-tests", otlp_endpoint=None)


@pytest.fixture
async def harness(kafka_bootstrap: str, database_url: str) -> AsyncIterator[dict[str, Any]]:
    settings = ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    group = unique("test-consumer")
    relay = OutboxRelay(engine, outbox, producer, service=unique("svc"))
    pipeline = EventPipeline(consumer=group, sessions=sessions(engine), inbox=inbox, outbox=outbox,
                             handler=record_and_validate, dead_letters=DeadLetters(producer, DLQ, group),
                             clock=SystemClock(), on_staged=relay.wake)
    consumer = InboxConsumer(settings, [READINGS], pipeline)
    tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(relay.run())]
    yield {"engine": engine, "producer": producer, "group": group}
    consumer.stop()
    relay.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    await producer.stop()
    await engine.dispose()


async def wait_for(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met within the timeout")
        await asyncio.sleep(0.2)


async def read_topic(bootstrap: str, topic: str, match: Any, count: int, timeout: float = 60.0) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            found += [m for ms in batches.values() for m in ms if match(m)]
    finally:
        await consumer.stop()
    return found


async def test_redelivered_event_is_applied_once_and_its_output_published_once(
        harness: dict[str, Any], kafka_bootstrap: str) -> None:
    tenant, meter = unique("tenant"), unique("meter")
    event = reading(meter, "12.345678901", tenant)
    raw = encode_event(event)
    for _ in range(3):  # an at-least-once producer upstream delivering the same event three times
        sent_headers = [*envelope_headers(event), ("traceparent", INCOMING_TRACEPARENT)]
        await harness["producer"].send_and_wait(READINGS, raw, key=meter.encode(), headers=sent_headers)

    async def applied_rows() -> list[Any]:
        async with harness["engine"].connect() as conn:
            return list((await conn.execute(select(applied).where(applied.c.meter_id == meter))).all())

    rows = await wait_for(applied_rows)
    await asyncio.sleep(2)  # give the duplicates time to arrive; they must change nothing
    rows = await applied_rows()
    assert len(rows) == 1
    assert rows[0].value == Decimal("12.345678901")

    published = await read_topic(kafka_bootstrap, VALIDATED, lambda m: m.key == meter.encode(), 1)
    headers = dict(published[0].headers)
    assert headers["event_type"] == b"ReadingValidated"
    assert headers["traceparent"].decode().split("-")[1] == TRACE_ID  # the trace goes on through the outbox
    async with harness["engine"].connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(outbox))).scalar() == 0

    async def caught_up() -> bool:  # the lag gauge of the group, once it has read to the partition's end
        from prometheus_client import REGISTRY
        lags = [REGISTRY.get_sample_value("amiflow_consumer_lag", {"consumer": harness["group"], "topic": READINGS,
                                                                  "partition": str(p)}) for p in range(12)]
        return any(lag is not None for lag in lags) and all(lag in (None, 0) for lag in lags)

    assert await wait_for(caught_up)


async def test_malformed_record_is_dead_lettered_with_reason_and_raw_bytes_and_consumer_goes_on(
        harness: dict[str, Any], kafka_bootstrap: str) -> None:
    tenant, meter = unique("tenant"), unique("meter")
    garbage = b'{"event_type": "ReadingReceived", "not": "an envelope" ' + meter.encode()
    await harness["producer"].send_and_wait(READINGS, garbage, key=meter.encode())
    good = reading(meter, "1.5", tenant)
    await harness["producer"].send_and_wait(READINGS, encode_event(good), key=meter.encode())

    dead = await read_topic(kafka_bootstrap, DLQ, lambda m: m.key == meter.encode(), 1)
    assert dead[0].value == garbage
    headers = dict(dead[0].headers)
    assert headers["dlq.kind"] == b"undecodable"
    assert headers["dlq.consumer"] == harness["group"].encode()
    assert headers["dlq.source.topic"] == READINGS.encode()
    assert len(headers["dlq.reason"]) > 10

    async def good_applied() -> bool:
        async with harness["engine"].connect() as conn:
            return (await conn.execute(select(applied).where(applied.c.event_id == str(good.event_id)))).first() \
                is not None

    assert await wait_for(good_applied)


async def test_offsets_are_committed_after_the_transaction_so_a_restarted_group_reapplies_nothing(
        kafka_bootstrap: str, database_url: str) -> None:
    settings = ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    group, tenant, meter = unique("group"), unique("tenant"), unique("meter")
    calls: list[str] = []

    async def counting(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        if envelope.key == meter:
            calls.append(str(envelope.event_id))
            await session.execute(insert(applied).values(event_id=str(envelope.event_id), meter_id=meter,
                                                         value=Decimal(1)))
        return []

    async def run_group_once() -> None:
        pipeline = EventPipeline(consumer=group, sessions=sessions(engine), inbox=inbox, outbox=outbox,
                                 handler=counting, dead_letters=DeadLetters(producer, DLQ, group),
                                 clock=SystemClock())
        consumer = InboxConsumer(settings, [READINGS], pipeline)
        task = asyncio.create_task(consumer.run())
        await asyncio.sleep(6)
        consumer.stop()
        await asyncio.wait_for(task, 30)

    try:
        for value in ("1", "2", "3"):
            await producer.send_and_wait(READINGS, encode_event(reading(meter, value, tenant)), key=meter.encode())
        await run_group_once()
        assert len(calls) == 3
        await run_group_once()  # the same group again: committed offsets mean nothing is redelivered
        assert len(calls) == 3
    finally:
        await producer.stop()
        await engine.dispose()


async def test_the_inbox_forgets_only_ids_older_than_the_retention(database_url: str) -> None:
    from datetime import timedelta

    from amiflow_runtime.inbox import claim, forget_before

    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    now = datetime(2026, 11, 21, tzinfo=UTC)
    old, recent = uuid.uuid4(), uuid.uuid4()
    async with sessions(engine)() as session, session.begin():
        assert await claim(session, inbox, "c", old, now - timedelta(days=40))
        assert await claim(session, inbox, "c", recent, now - timedelta(days=1))
    async with sessions(engine)() as session, session.begin():
        assert await forget_before(session, inbox, now - timedelta(days=30)) == 1
    async with sessions(engine)() as session, session.begin():
        assert await claim(session, inbox, "c", old, now)  # forgotten: would apply again
        assert not await claim(session, inbox, "c", recent, now)  # still remembered
    await engine.dispose()


async def test_a_batch_is_applied_in_one_go_and_a_poison_event_in_it_is_dead_lettered_alone(
        kafka_bootstrap: str, database_url: str) -> None:
    """apply_batch: duplicates inside the batch and from before are skipped, a handler error on one event
    rolls the batch back and it is applied event by event — the poison one dead-lettered, the rest once."""
    from amiflow_runtime.deadletter import ConsumedRecord
    from amiflow_runtime.pipeline import Rejected

    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    tenant, group = unique("tenant"), unique("batch-consumer")
    calls: list[str] = []

    async def handler(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        calls.append(envelope.payload.meter_id)
        if envelope.payload.meter_id.startswith("POISON"):
            raise Rejected("this meter's readings can never be applied")
        return await record_and_validate(session, envelope)

    pipeline = EventPipeline(consumer=group, sessions=sessions(engine), inbox=inbox, outbox=outbox,
                             handler=handler, dead_letters=DeadLetters(producer, DLQ, group), clock=SystemClock())

    def record(envelope: Envelope[Any], offset: int) -> ConsumedRecord:
        return ConsumedRecord(topic=READINGS, partition=0, offset=offset, key=envelope.key.encode(),
                              value=encode_event(envelope), headers=envelope_headers(envelope))

    try:
        earlier = reading(unique("m"), "1", tenant)
        await pipeline.apply(record(earlier, 0))
        good = [reading(unique("m"), str(n), tenant) for n in range(5)]
        batch = [record(e, n + 1) for n, e in enumerate(good)]
        batch.insert(2, record(good[0], 90))  # re-sent inside the batch
        batch.append(record(earlier, 91))  # applied before
        await pipeline.apply_batch(batch)
        calls_of_clean_batch = len(calls)

        poison = reading(unique("POISON"), "2", tenant)
        more = [reading(unique("m"), str(n), tenant) for n in range(3)]
        await pipeline.apply_batch([record(more[0], 100), record(poison, 101), record(more[1], 102),
                                    record(more[2], 103)])
        async with engine.connect() as conn:
            rows = {r.event_id for r in await conn.execute(select(applied.c.event_id))}
            staged = (await conn.execute(select(func.count()).select_from(outbox))).scalar()
    finally:
        await producer.stop()
        await engine.dispose()

    assert calls_of_clean_batch == 1 + 5  # the earlier event, then each new one once: no duplicate reached it
    expected = {str(e.event_id) for e in (earlier, *good, *more)}
    assert expected <= rows and str(poison.event_id) not in rows
    assert staged == len(expected)  # one ReadingValidated each, in the outbox (no relay runs here)
    dead = await read_topic(kafka_bootstrap, DLQ, lambda m: m.key == poison.key.encode(), 1)
    assert dict(dead[0].headers)["dlq.kind"] == b"rejected"


async def test_a_batch_handler_sees_the_fresh_events_first_and_writes_back_once_per_batch(
        kafka_bootstrap: str, database_url: str) -> None:
    """BatchHandler: its scope is opened with the batch's fresh events (no duplicates), the events go
    through the handler it yields one by one, and its write-back runs once, in the same transaction —
    on the one-by-one path after a poison event too, where nothing of the failed batch is kept."""
    from contextlib import asynccontextmanager

    from amiflow_runtime.deadletter import ConsumedRecord
    from amiflow_runtime.pipeline import BatchHandler, Handler, Rejected

    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    tenant, group = unique("tenant"), unique("scoped-consumer")
    scopes: list[list[str]] = []

    @asynccontextmanager
    async def scope(session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> AsyncIterator[Handler]:
        scopes.append([e.payload.meter_id for e in envelopes])
        pending: list[Envelope[Any]] = []

        async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
            if envelope.payload.meter_id.startswith("POISON"):
                raise Rejected("never applicable")
            pending.append(envelope)
            return []

        yield handle
        for envelope in pending:  # the write-back: what the batch gathered, once
            await record_and_validate(session, envelope)

    pipeline = EventPipeline(consumer=group, sessions=sessions(engine), inbox=inbox, outbox=outbox,
                             handler=BatchHandler(scope), dead_letters=DeadLetters(producer, DLQ, group),
                             clock=SystemClock())

    def record(envelope: Envelope[Any], offset: int) -> ConsumedRecord:
        return ConsumedRecord(topic=READINGS, partition=0, offset=offset, key=envelope.key.encode(),
                              value=encode_event(envelope), headers=envelope_headers(envelope))

    try:
        good = [reading(unique("m"), str(n), tenant) for n in range(3)]
        await pipeline.apply_batch([record(good[0], 0), record(good[1], 1), record(good[0], 2), record(good[2], 3)])
        poison = reading(unique("POISON"), "9", tenant)
        after = reading(unique("m"), "4", tenant)
        await pipeline.apply_batch([record(poison, 4), record(after, 5)])
        async with engine.connect() as conn:
            rows = {r.event_id for r in await conn.execute(select(applied.c.event_id))}
    finally:
        await producer.stop()
        await engine.dispose()

    meters = [e.payload.meter_id for e in good]
    assert scopes[0] == meters  # the re-sent event is not offered twice
    # the failed batch, then one scope per event on the one-by-one path
    assert scopes[1:] == [[poison.payload.meter_id, after.payload.meter_id], [poison.payload.meter_id],
                          [after.payload.meter_id]]
    assert {str(e.event_id) for e in (*good, after)} <= rows and str(poison.event_id) not in rows
