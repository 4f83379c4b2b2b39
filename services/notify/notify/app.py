"""Notify's handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from amiflow_runtime.clock import Clock
from amiflow_runtime.pipeline import Handler
from amiflow_schemas import Envelope
from sqlalchemy.ext.asyncio import AsyncSession

from notify.adapters import db
from notify.core.triggers import trigger_for


def trigger_handler(clock: Clock) -> Handler:
    """Record each event that calls for a notification."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        trigger = trigger_for(envelope.payload)
        if trigger is not None:
            await db.record(session, event_id=envelope.event_id, tenant_id=envelope.tenant_id,
                            event_type=envelope.event_type, trigger=trigger,
                            occurred_at=envelope.occurred_at, recorded_at=clock.now())
        return []

    return handle
