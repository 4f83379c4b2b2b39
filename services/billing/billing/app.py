"""Billing's handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from amiflow_runtime.pipeline import Rejected
from amiflow_schemas import Envelope
from amiflow_schemas.events.readings import ReadingValidated
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters import db
from billing.core.consumption import UnitMismatch, evolve


async def on_reading_validated(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
    """Fold a validated reading into the meter's consumption projection."""
    if not isinstance(envelope.payload, ReadingValidated):
        return []  # ReadingCorrected re-rating arrives with the billing issue
    before = await db.load(session, envelope.tenant_id, envelope.payload.meter_id)
    try:
        after = evolve(before, envelope.payload)
    except UnitMismatch as exc:
        raise Rejected(str(exc)) from exc  # dead-lettered with the reason for an operator to resolve
    await db.save(session, envelope.tenant_id, after, before is not None)
    return []
