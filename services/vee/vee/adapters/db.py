"""VEE's tables: per-meter baselines and the validated readings it published."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from amiflow_runtime.db import ExactDecimal, UtcDateTime, inbox_table, outbox_table
from amiflow_schemas.events.readings import ReadingValidated
from amiflow_schemas.primitives import Unit
from sqlalchemy import Column, Index, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vee.core.validation import RegisterBaseline

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

register_baselines = Table(
    "register_baselines", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("meter_id", String(64), primary_key=True),
    Column("measured_at", UtcDateTime(), nullable=False),
    Column("value", ExactDecimal(), nullable=False),
    Column("unit", String(8), nullable=False),
)

validated_readings = Table(
    "validated_readings", metadata,
    Column("event_id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("meter_id", String(64), nullable=False),
    Column("measured_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("consumption", ExactDecimal(), nullable=True),
    Column("consumption_unit", String(8), nullable=True),
    Column("failure", Text, nullable=True),
    Column("registers", Text, nullable=False),  # JSON [{register, value, unit}]
    Column("source_event_id", String(36), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_validated_readings_meter_time", "tenant_id", "meter_id", "measured_at"),
)


async def baseline(session: AsyncSession, tenant_id: str, meter_id: str) -> RegisterBaseline | None:
    row = (await session.execute(select(register_baselines).where(
        register_baselines.c.tenant_id == tenant_id, register_baselines.c.meter_id == meter_id,
    ))).first()
    return None if row is None else RegisterBaseline(row.measured_at, row.value, Unit(row.unit))


async def save_baseline(session: AsyncSession, tenant_id: str, meter_id: str, had_one: bool,
                        value: RegisterBaseline) -> None:
    values = {"measured_at": value.measured_at, "value": value.value, "unit": value.unit.value}
    if had_one:
        await session.execute(update(register_baselines).where(
            register_baselines.c.tenant_id == tenant_id, register_baselines.c.meter_id == meter_id,
        ).values(**values))
    else:
        await session.execute(insert(register_baselines).values(tenant_id=tenant_id, meter_id=meter_id, **values))


async def record_validated(session: AsyncSession, *, event_id: UUID, tenant_id: str, reading: ReadingValidated,
                           failure: str | None, recorded_at: datetime) -> None:
    await session.execute(insert(validated_readings).values(
        event_id=str(event_id), tenant_id=tenant_id, meter_id=reading.meter_id,
        measured_at=reading.measured_at, status=reading.status.value, consumption=reading.consumption,
        consumption_unit=reading.consumption_unit.value if reading.consumption_unit else None,
        failure=failure, registers=json.dumps([r.model_dump(mode="json") for r in reading.registers]),
        source_event_id=str(reading.source_event_id), recorded_at=recorded_at,
    ))


async def readings_of(session: AsyncSession, tenant_id: str, meter_id: str, since: datetime | None,
                      until: datetime | None, limit: int) -> list[dict[str, Any]]:
    query = select(validated_readings).where(
        validated_readings.c.tenant_id == tenant_id, validated_readings.c.meter_id == meter_id)
    if since is not None:
        query = query.where(validated_readings.c.measured_at >= since)
    if until is not None:
        query = query.where(validated_readings.c.measured_at < until)
    rows = (await session.execute(query.order_by(validated_readings.c.measured_at.desc()).limit(limit))).all()
    return [{**row._asdict(), "registers": json.loads(row.registers)} for row in rows]
