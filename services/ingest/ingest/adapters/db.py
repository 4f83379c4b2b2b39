"""Ingest's tables and the queries its handlers run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from amiflow_runtime.db import UtcDateTime, inbox_table, outbox_table
from sqlalchemy import Column, MetaData, String, Table, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.core.readings import PriorReading

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

# One row per reading accepted through the API: the idempotency record (same tenant, meter and
# instant is the same reading) and the receipt an integrator can ask about.
accepted_readings = Table(
    "accepted_readings", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("meter_id", String(128), primary_key=True),
    Column("measured_at", UtcDateTime(), primary_key=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("fingerprint", String(64), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)


PRIOR_LOOKUP_CHUNK = 1000  # keeps bound parameters well under SQLite's and asyncpg's limits


async def priors_for(session: AsyncSession, tenant_id: str,
                     keys: Iterable[tuple[str, datetime]]) -> dict[tuple[str, datetime], PriorReading]:
    """The readings already accepted for these (meter, instant) keys, in one query per chunk."""
    wanted = list(dict.fromkeys(keys))
    found: dict[tuple[str, datetime], PriorReading] = {}
    for start in range(0, len(wanted), PRIOR_LOOKUP_CHUNK):
        chunk = wanted[start:start + PRIOR_LOOKUP_CHUNK]
        rows = await session.execute(
            select(accepted_readings.c.meter_id, accepted_readings.c.measured_at, accepted_readings.c.event_id,
                   accepted_readings.c.fingerprint).where(
                accepted_readings.c.tenant_id == tenant_id,
                tuple_(accepted_readings.c.meter_id, accepted_readings.c.measured_at).in_(chunk),
            )
        )
        for row in rows:
            found[(row.meter_id, row.measured_at)] = PriorReading(UUID(row.event_id), row.fingerprint)
    return found


async def record_accepted_many(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    """Insert accepted-reading records in one statement (executemany)."""
    if rows:
        await session.execute(insert(accepted_readings), rows)


async def prior_reading(session: AsyncSession, tenant_id: str, meter_id: str,
                        measured_at: datetime) -> PriorReading | None:
    row = (await session.execute(
        select(accepted_readings.c.event_id, accepted_readings.c.fingerprint).where(
            accepted_readings.c.tenant_id == tenant_id,
            accepted_readings.c.meter_id == meter_id,
            accepted_readings.c.measured_at == measured_at,
        )
    )).first()
    return None if row is None else PriorReading(UUID(row.event_id), row.fingerprint)


async def record_accepted(session: AsyncSession, *, tenant_id: str, meter_id: str, measured_at: datetime,
                          event_id: UUID, fingerprint: str, received_at: datetime) -> None:
    await session.execute(insert(accepted_readings).values(
        tenant_id=tenant_id, meter_id=meter_id, measured_at=measured_at, event_id=str(event_id),
        fingerprint=fingerprint, received_at=received_at,
    ))
