"""VEE's handler of registry events: the meter facts validation needs (multiplier, dials, unit,
installation and removal readings, groups), kept per tenant and meter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from amiflow_runtime.clock import Clock
from amiflow_runtime.db import lock_for_transaction, lock_many_for_transaction
from amiflow_runtime.pipeline import BatchHandler, Handler
from amiflow_schemas import Envelope
from amiflow_schemas.events.registry import MeterDefined, MeterReplaced
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters import registry_db
from vee.series_app import Zones, place_held_reads


def registry_handler(clock: Clock, zones: Zones) -> Handler:
    """MeterDefined / MeterReplaced → the meter's latest state (gateways and SIM cards are not VEE's);
    readings that came before the meter was known are validated now."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        payload = envelope.payload
        if not isinstance(payload, MeterDefined | MeterReplaced):
            return []
        now: datetime = clock.now()
        # The readings agent may be holding a reading of this very meter as unknown right now.
        await lock_for_transaction(session, envelope.tenant_id, "meter", payload.meter.meter_id)
        if not await registry_db.remember(session, envelope.tenant_id, payload.revision, payload.meter, now):
            return []
        return await place_held_reads(session, envelope.tenant_id, payload.meter.meter_id, clock, zones)

    return handle


def registry_batch_handler(clock: Clock, zones: Zones) -> BatchHandler:
    """The registry handler for a consumed batch: every meter's lock first, all in sorted order, as the
    readings batch takes them — one batch of each locking the same meters in arrival order deadlocked."""
    handle = registry_handler(clock, zones)

    @asynccontextmanager
    async def scope(session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> AsyncIterator[Handler]:
        await lock_many_for_transaction(session, [(e.tenant_id, "meter", e.payload.meter.meter_id) for e in envelopes
                                                  if isinstance(e.payload, MeterDefined | MeterReplaced)])
        yield handle

    return BatchHandler(scope)
