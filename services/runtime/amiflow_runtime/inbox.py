"""The inbox: which event ids a consumer has applied, recorded in the effect's own transaction."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession


async def claim(session: AsyncSession, inbox: Table, consumer: str, event_id: UUID, now: datetime) -> bool:
    """Record `event_id` for `consumer` inside the open transaction; False if it was applied before.

    The select-then-insert is safe because a consumer group gives one partition (hence one event id)
    to one member at a time; the primary key still rejects a racing duplicate, which rolls back the
    whole transaction and the redelivery then finds the id.
    """
    key = str(event_id)
    seen = await session.execute(
        select(inbox.c.event_id).where(inbox.c.consumer == consumer, inbox.c.event_id == key)
    )
    if seen.first() is not None:
        return False
    await session.execute(insert(inbox).values(consumer=consumer, event_id=key, processed_at=now))
    return True
