"""The inbox: which event ids a consumer has applied, recorded in the effect's own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from amiflow_runtime.db import one_of


async def forget_before(session: AsyncSession, inbox: Table, cutoff: datetime, batch: int = 10_000) -> int:
    """Delete up to `batch` inbox rows processed before `cutoff`; returns how many went."""
    oldest = select(inbox.c.consumer, inbox.c.event_id).where(inbox.c.processed_at < cutoff).limit(batch)
    rows = (await session.execute(oldest)).all()
    for consumer, event_id in rows:
        await session.execute(delete(inbox).where(inbox.c.consumer == consumer, inbox.c.event_id == event_id))
    return len(rows)


async def claim(session: AsyncSession, inbox: Table, consumer: str, event_id: UUID, now: datetime) -> bool:
    """Record `event_id` for `consumer` inside the open transaction; False if it was applied before.

    The select-then-insert is safe because a consumer group gives one partition (hence one event id)
    to one member at a time; the primary key still rejects a racing duplicate, which rolls back the
    whole transaction and the redelivery then finds the id.
    """
    return event_id in await claim_many(session, inbox, consumer, [event_id], now)


async def claim_many(session: AsyncSession, inbox: Table, consumer: str, event_ids: Sequence[UUID],
                     now: datetime) -> set[UUID]:
    """`claim` for a batch: records the ids not applied before and returns them (each id once).

    One query finds the ids already applied and one insert records the rest, whatever the batch size;
    an id twice in the batch (a relay re-sent it) is claimed once.
    """
    wanted = {str(event_id): event_id for event_id in event_ids}
    seen: set[str] = set()
    keys = list(wanted)
    for start in range(0, len(keys), 1000):  # bounded lists
        rows = await session.execute(select(inbox.c.event_id).where(
            inbox.c.consumer == consumer, one_of(session, inbox.c.event_id, keys[start:start + 1000])))
        seen.update(r.event_id for r in rows)
    fresh = [key for key in keys if key not in seen]
    if fresh:
        await session.execute(insert(inbox), [{"consumer": consumer, "event_id": key, "processed_at": now}
                                              for key in fresh])
    return {wanted[key] for key in fresh}
