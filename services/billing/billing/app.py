"""Billing's handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from amiflow_schemas import Envelope
from amiflow_schemas.events.readings import ReadingValidated
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters import db
from billing.core.consumption import evolve


async def on_reading_validated(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
    """Fold a validated reading into the meter's consumption projection."""
    if not isinstance(envelope.payload, ReadingValidated):
        return []  # ReadingCorrected re-rating arrives with the billing issue
    before = await db.load(session, envelope.tenant_id, envelope.payload.meter_id)
    await db.save(session, envelope.tenant_id, evolve(before, envelope.payload), before is not None)
    return []
