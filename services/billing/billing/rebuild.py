"""Rebuild billing's projections by replaying its own topics from the beginning into an empty database.

The ledger is the truth: accounts, meter links and ledger entries (amiflow.billing.ledger), tariff
versions (amiflow.billing.tariffs) and balance states (amiflow.billing.balance) fold into the same
projections the live service keeps, through the same `store.project`, so every balance and every
DailySettled comes back to the cent. Rating's working state (tier periods, rated readings) is not on
the topics; it is rebuilt by replaying the validated readings into a fresh billing consumer group.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from amiflow_runtime.kafka import client_options
from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas import decode_event
from amiflow_schemas.topics import topic_named
from sqlalchemy import func, select

from billing.adapters import store

log = logging.getLogger("billing.rebuild")
# Tariffs first (links name them), then the ledger (accounts before their entries, one partition per
# account), then balance states (they update balance rows the ledger created).
REPLAY_ORDER = ("amiflow.billing.tariffs", "amiflow.billing.ledger", "amiflow.billing.balance")


class NotEmpty(RuntimeError):
    """Replaying into a database that already holds billing state would count everything twice."""


async def rebuild(runtime: ServiceRuntime, tenant_id: str | None = None) -> int:
    """Fold every billing event (of one tenant, or all) into the projections; returns how many."""
    await runtime.migrate()
    async with runtime.sessions() as session:
        if (await session.execute(select(func.count()).select_from(store.account_events))).scalar():
            raise NotEmpty("the billing database is not empty: rebuild into a fresh one")
    applied = 0
    for topic in REPLAY_ORDER:
        applied += await _replay(runtime, topic_named(topic).name, tenant_id)
    log.info("rebuilt billing projections from %d events", applied)
    return applied


async def _replay(runtime: ServiceRuntime, topic: str, tenant_id: str | None) -> int:
    partitions = [TopicPartition(topic, p) for p in range(await _partition_count(runtime, topic))]
    consumer = AIOKafkaConsumer(**client_options(runtime.settings), enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    applied = 0
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            async with runtime.sessions() as session, session.begin():
                for tp, records in batch.items():
                    applied += await _apply(session, records, tenant_id)
                    if records and records[-1].offset + 1 >= ends[tp]:
                        pending.discard(tp)
    finally:
        await consumer.stop()
    return applied


async def _partition_count(runtime: ServiceRuntime, topic: str) -> int:
    admin = AIOKafkaAdminClient(**client_options(runtime.settings), client_id="billing-rebuild")
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return len(described["partitions"])


async def _apply(session: Any, records: list[Any], tenant_id: str | None) -> int:
    applied = 0
    for record in records:
        event = decode_event(record.value)
        if tenant_id is None or event.tenant_id == tenant_id:
            await store.project(session, event)
            applied += 1
    return applied


def rebuild_command(runtime: ServiceRuntime) -> int:
    """`python -m billing.main rebuild`: exit 0 after the replay, 1 when the database is not empty."""
    try:
        count = asyncio.run(rebuild(runtime))
    except NotEmpty as exc:
        log.error("%s", exc)
        return 1
    print(f"rebuilt billing projections from {count} events")  # noqa: T201 - a CLI's answer
    return 0
