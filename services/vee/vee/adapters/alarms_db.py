"""VEE's alarm read model: one row per episode, from raise to clear, with its acknowledgement."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from amiflow_runtime.db import ExactDecimal, UtcDateTime
from amiflow_schemas.events.alarms import AlarmAcknowledged, AlarmCleared, AlarmRaised
from sqlalchemy import Column, Index, String, Table, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters.db import metadata

alarms = Table(
    "alarms", metadata,
    Column("alarm_id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("alarm_type", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("subject", String(16), nullable=False),
    Column("subject_id", String(128), nullable=False),
    Column("utility", String(16), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("detected_at", UtcDateTime(), nullable=False),
    Column("observed_value", ExactDecimal(), nullable=True),
    Column("threshold_value", ExactDecimal(), nullable=True),
    Column("value_unit", String(16), nullable=True),
    Column("description", Text, nullable=False),
    Column("state", String(16), nullable=False),  # open | cleared
    Column("cleared_at", UtcDateTime(), nullable=True),
    Column("clear_reason", String(32), nullable=True),
    Column("acknowledged_at", UtcDateTime(), nullable=True),
    Column("acknowledged_by", String(128), nullable=True),
    Column("ack_note", Text, nullable=True),
    Index("ix_alarms_tenant_state_time", "tenant_id", "state", "detected_at"),
)


async def raised(session: AsyncSession, tenant_id: str, alarm: AlarmRaised) -> None:
    await session.execute(insert(alarms).values(
        alarm_id=str(alarm.alarm_id), tenant_id=tenant_id, alarm_type=alarm.alarm_type.value,
        severity=alarm.severity.value, subject=alarm.subject.value, subject_id=alarm.subject_id,
        utility=alarm.utility.value, rule_id=alarm.rule_id, detected_at=alarm.detected_at,
        observed_value=alarm.observed_value, threshold_value=alarm.threshold_value,
        value_unit=alarm.value_unit.value if alarm.value_unit else None, description=alarm.description,
        state="open",
    ))


async def cleared(session: AsyncSession, tenant_id: str, alarm: AlarmCleared) -> None:
    await session.execute(update(alarms).where(
        alarms.c.tenant_id == tenant_id, alarms.c.alarm_id == str(alarm.alarm_id)).values(
        state="cleared", cleared_at=alarm.cleared_at, clear_reason=alarm.reason.value))


async def acknowledged(session: AsyncSession, tenant_id: str, ack: AlarmAcknowledged) -> None:
    await session.execute(update(alarms).where(
        alarms.c.tenant_id == tenant_id, alarms.c.alarm_id == str(ack.alarm_id)).values(
        acknowledged_at=ack.acknowledged_at, acknowledged_by=ack.acknowledged_by, ack_note=ack.note))


async def apply(session: AsyncSession, tenant_id: str, event: AlarmRaised | AlarmCleared) -> None:
    """Project one raised or cleared alarm."""
    if isinstance(event, AlarmRaised):
        await raised(session, tenant_id, event)
    else:
        await cleared(session, tenant_id, event)


async def alarm(session: AsyncSession, tenant_id: str, alarm_id: UUID) -> dict[str, Any] | None:
    row = (await session.execute(select(alarms).where(
        alarms.c.tenant_id == tenant_id, alarms.c.alarm_id == str(alarm_id)))).first()
    return None if row is None else row._asdict()


async def search(session: AsyncSession, tenant_id: str, *, state: str | None, alarm_type: str | None,
                 subject_id: str | None, since: datetime | None, until: datetime | None,
                 limit: int) -> list[dict[str, Any]]:
    query = select(alarms).where(alarms.c.tenant_id == tenant_id)
    for column, value in ((alarms.c.state, state), (alarms.c.alarm_type, alarm_type),
                          (alarms.c.subject_id, subject_id)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(alarms.c.detected_at >= since)
    if until is not None:
        query = query.where(alarms.c.detected_at < until)
    rows = await session.execute(query.order_by(alarms.c.detected_at.desc()).limit(limit))
    return [row._asdict() for row in rows]
