"""Notify's tables: the triggers it recorded (deliveries come with the notifications issue)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from amiflow_runtime.db import UtcDateTime, inbox_table, outbox_table
from sqlalchemy import Column, Index, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from notify.core.triggers import Trigger

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

notification_triggers = Table(
    "notification_triggers", metadata,
    Column("event_id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_notification_triggers_tenant_time", "tenant_id", "occurred_at"),
)


async def record(session: AsyncSession, *, event_id: UUID, tenant_id: str, event_type: str, trigger: Trigger,
                 occurred_at: datetime, recorded_at: datetime) -> None:
    await session.execute(insert(notification_triggers).values(
        event_id=str(event_id), tenant_id=tenant_id, event_type=event_type, audience=trigger.audience.value,
        subject_id=trigger.subject_id, occurred_at=occurred_at, recorded_at=recorded_at,
    ))


async def recent(session: AsyncSession, tenant_id: str, subject_id: str | None, limit: int) -> list[dict[str, Any]]:
    query = select(notification_triggers).where(notification_triggers.c.tenant_id == tenant_id)
    if subject_id is not None:
        query = query.where(notification_triggers.c.subject_id == subject_id)
    rows = (await session.execute(query.order_by(notification_triggers.c.occurred_at.desc()).limit(limit))).all()
    return [row._asdict() for row in rows]
