"""VEE's handler of registry events: the meter facts validation needs (multiplier, dials, unit,
installation and removal readings, groups), kept per tenant and meter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from amiflow_runtime.clock import Clock
from amiflow_runtime.pipeline import Handler
from amiflow_schemas import Envelope
from amiflow_schemas.events.registry import MeterDefined, MeterReplaced
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters import registry_db


def registry_handler(clock: Clock) -> Handler:
    """MeterDefined / MeterReplaced → the meter's latest state (gateways and SIM cards are not VEE's)."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        payload = envelope.payload
        if isinstance(payload, MeterDefined | MeterReplaced):
            now: datetime = clock.now()
            await registry_db.remember(session, envelope.tenant_id, payload.revision, payload.meter, now)
        return []

    return handle
