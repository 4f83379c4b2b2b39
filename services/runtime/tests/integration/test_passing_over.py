"""A pipeline that names the event types its handler acts on passes over the others unread — no transaction,
no inbox row, no handler call — and still applies (exactly once) the types it wants and any record without
an event_type header, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.db import inbox_table, make_engine, outbox_table, sessions
from amiflow_runtime.deadletter import ConsumedRecord, DeadLetters
from amiflow_runtime.pipeline import EventPipeline
from amiflow_schemas import Envelope, encode_event, envelope_headers, new_envelope
from amiflow_schemas.examples import example_payloads
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncSession

pytestmark = pytest.mark.integration

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def _record(event_type: str, offset: int, *, with_headers: bool = True) -> tuple[ConsumedRecord, uuid.UUID]:
    envelope = new_envelope(example_payloads()[event_type], event_id=uuid.uuid4(), tenant_id="t", key="k",
                            occurred_at=NOW, recorded_at=NOW, producer="test")
    headers = envelope_headers(envelope) if with_headers else []
    record = ConsumedRecord(topic="amiflow.billing.ledger", partition=0, offset=offset, key=b"k",
                            value=encode_event(envelope), headers=headers)
    return record, envelope.event_id


async def test_only_the_wanted_event_types_are_read(database_url: str) -> None:
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    handled: list[str] = []

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        handled.append(envelope.event_type)
        return []

    pipeline = EventPipeline(consumer="c", sessions=sessions(engine), inbox=inbox, outbox=outbox, handler=handle,
                             dead_letters=cast(DeadLetters, None), clock=FrozenClock(NOW),
                             wanted=frozenset({"MeterLinkedToAccount"}))
    try:
        charges = [_record("ChargeApplied", n) for n in range(5)]
        linked, linked_id = _record("MeterLinkedToAccount", 5)
        bare, bare_id = _record("ChargeApplied", 6, with_headers=False)  # no header: read as before
        await pipeline.apply_batch([r for r, _ in charges] + [linked, bare])
        await pipeline.apply_batch([r for r, _ in charges])  # only passed-over records: nothing at all
        await pipeline.apply(charges[0][0])
        await pipeline.apply(linked)  # a redelivery of a wanted one: the inbox still drops it
        assert handled == ["MeterLinkedToAccount", "ChargeApplied"]
        async with sessions(engine)() as session:
            claimed = {r.event_id for r in await session.execute(select(inbox.c.event_id))}
        assert claimed == {str(linked_id), str(bare_id)}
    finally:
        await engine.dispose()
