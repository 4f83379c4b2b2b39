"""Ingest's handlers: load state, ask the core, persist the effect and its events in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from amiflow_runtime import outbox
from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas.events.readings import ReadingReceived
from sqlalchemy.exc import IntegrityError

from ingest.adapters import db
from ingest.core.readings import Outcome, check_clock, decide, fingerprint, received_event


@dataclass(frozen=True)
class Receipt:
    """The answer to a submitted reading."""

    outcome: Outcome
    event_id: uuid.UUID


async def submit_reading(runtime: ServiceRuntime, tenant_id: str, reading: ReadingReceived,
                         max_future_skew: timedelta) -> Receipt:
    """Record a reading and stage its ReadingReceived; repeats are answered, not republished."""
    now = runtime.clock.now()
    check_clock(reading, now, max_future_skew)
    for _attempt in range(2):
        try:
            return await _submit_once(runtime, tenant_id, reading)
        except IntegrityError:
            continue  # a concurrent submission of the same reading won; the next pass finds it
    raise RuntimeError("reading could not be recorded after a concurrent insert")


async def _submit_once(runtime: ServiceRuntime, tenant_id: str, reading: ReadingReceived) -> Receipt:
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        prior = await db.prior_reading(session, tenant_id, reading.meter_id, reading.measured_at)
        outcome = decide(prior, reading)
        if prior is not None:
            return Receipt(outcome, prior.event_id)
        event = received_event(reading, tenant_id=tenant_id, event_id=uuid.uuid4(), now=now)
        await db.record_accepted(session, tenant_id=tenant_id, meter_id=reading.meter_id,
                                 measured_at=reading.measured_at, event_id=event.event_id,
                                 fingerprint=fingerprint(reading), received_at=now)
        await outbox.stage(session, db.outbox, [event], now)
    runtime.wake_relay()
    return Receipt(outcome, event.event_id)
