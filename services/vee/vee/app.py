"""VEE's handlers: load the meter's baseline, validate in the core, persist and emit together."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from amiflow_runtime.clock import Clock
from amiflow_runtime.pipeline import Handler
from amiflow_schemas import Envelope, new_envelope
from amiflow_schemas.events.readings import ReadingReceived
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters import db
from vee.core.validation import validate

PRODUCER = "vee"


def reading_received_handler(clock: Clock) -> Handler:
    """ReadingReceived → ReadingValidated, keeping the meter's baseline in the same transaction."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        if not isinstance(envelope.payload, ReadingReceived):
            return []  # other events on the topic are not VEE's business yet
        received: ReadingReceived = envelope.payload
        before = await db.baseline(session, envelope.tenant_id, received.meter_id)
        verdict = validate(before, received, envelope.event_id)
        if verdict.baseline is not None and verdict.baseline != before:
            await db.save_baseline(session, envelope.tenant_id, received.meter_id, before is not None,
                                   verdict.baseline)
        now = clock.now()
        validated = new_envelope(
            verdict.reading, event_id=uuid.uuid4(), tenant_id=envelope.tenant_id, key=received.meter_id,
            occurred_at=received.measured_at, recorded_at=now, producer=PRODUCER,
            correlation_id=envelope.correlation_id, causation_id=envelope.event_id,
        )
        await db.record_validated(session, event_id=validated.event_id, tenant_id=envelope.tenant_id,
                                  reading=verdict.reading, failure=verdict.failure, recorded_at=now)
        return [validated]

    return handle
