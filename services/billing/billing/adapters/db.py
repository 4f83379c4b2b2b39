"""Billing's tables: the meter consumption projection (accounts and ledger come with the billing issue)."""

from __future__ import annotations

from amiflow_runtime.db import ExactDecimal, UtcDateTime, inbox_table, outbox_table
from amiflow_schemas.primitives import Unit, Utility
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.consumption import MeterConsumption

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

meter_consumption = Table(
    "meter_consumption", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("meter_id", String(64), primary_key=True),
    Column("utility", String(16), nullable=False),
    Column("unit", String(8), nullable=True),
    Column("total", ExactDecimal(), nullable=False),
    Column("readings", Integer, nullable=False),
    Column("last_measured_at", UtcDateTime(), nullable=False),
)


async def load(session: AsyncSession, tenant_id: str, meter_id: str) -> MeterConsumption | None:
    row = (await session.execute(select(meter_consumption).where(
        meter_consumption.c.tenant_id == tenant_id, meter_consumption.c.meter_id == meter_id))).first()
    if row is None:
        return None
    return MeterConsumption(row.meter_id, Utility(row.utility), Unit(row.unit) if row.unit else None,
                            row.total, row.readings, row.last_measured_at)


async def save(session: AsyncSession, tenant_id: str, state: MeterConsumption, existed: bool) -> None:
    values = {"utility": state.utility.value, "unit": state.unit.value if state.unit else None,
              "total": state.total, "readings": state.readings, "last_measured_at": state.last_measured_at}
    if existed:
        await session.execute(update(meter_consumption).where(
            meter_consumption.c.tenant_id == tenant_id, meter_consumption.c.meter_id == state.meter_id,
        ).values(**values))
    else:
        await session.execute(insert(meter_consumption).values(tenant_id=tenant_id, meter_id=state.meter_id,
                                                               **values))
