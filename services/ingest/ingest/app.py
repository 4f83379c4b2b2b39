"""Ingest's reading handlers: load what was accepted before, decide in the core, record and stage
the events in one transaction, wake the relay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from amiflow_runtime import outbox
from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas import Envelope, new_envelope
from amiflow_schemas.events.devices import DeviceStatusReported
from amiflow_schemas.events.readings import ReadingReceived
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.adapters import db, reports_db
from ingest.core.batches import ItemVerdict, decide_batch, reading_key
from ingest.core.readings import PRODUCER, Outcome, check_clock, fingerprint, received_event


@dataclass(frozen=True)
class Receipt:
    """The answer to one submitted reading."""

    outcome: Outcome
    event_id: uuid.UUID


@dataclass(frozen=True)
class Submission:
    """One valid item of a batch: its position, the reading and the device status sent with it, if any."""

    index: int
    reading: ReadingReceived
    status: DeviceStatusReported | None = None


async def submit_reading(runtime: ServiceRuntime, tenant_id: str, reading: ReadingReceived,
                         max_future_skew: timedelta) -> Receipt:
    """Record one reading and stage its ReadingReceived; repeats are answered, not republished."""
    check_clock(reading, runtime.clock.now(), max_future_skew)
    [verdict] = await submit_batch(runtime, tenant_id, [Submission(0, reading)])
    return Receipt(verdict.outcome, verdict.event_id)


async def submit_batch(runtime: ServiceRuntime, tenant_id: str, items: Sequence[Submission]) -> list[ItemVerdict]:
    """Record a batch of valid readings in one transaction; a concurrent insert makes it re-decide once."""
    if not items:
        return []
    for attempt in range(2):
        try:
            return await _submit_once(runtime, tenant_id, items)
        except IntegrityError:
            if attempt:
                raise  # not a race any more: a real constraint problem, let it surface
    raise AssertionError("unreachable")


async def _submit_once(runtime: ServiceRuntime, tenant_id: str, items: Sequence[Submission]) -> list[ItemVerdict]:
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        priors = await db.priors_for(session, tenant_id, (reading_key(i.reading) for i in items))
        verdicts = decide_batch(priors, [(i.index, i.reading) for i in items], [uuid.uuid4() for _ in items])
        accepted = [(item, v) for item, v in zip(items, verdicts, strict=True) if v.outcome is Outcome.ACCEPTED]
        await db.record_accepted_many(session, [_record(tenant_id, item.reading, v.event_id, now)
                                                for item, v in accepted])
        await reports_db.note_readings(session, tenant_id, (item.reading for item, _ in accepted), now)
        await reports_db.note_statuses(session, tenant_id, (item.status for item, _ in accepted if item.status))
        await outbox.stage(session, db.outbox, _events(tenant_id, accepted, now), now)
    if accepted:
        runtime.wake_relay()
    return verdicts


def _record(tenant_id: str, reading: ReadingReceived, event_id: uuid.UUID, now: datetime) -> dict[str, object]:
    return {"tenant_id": tenant_id, "meter_id": reading.meter_id, "measured_at": reading.measured_at,
            "event_id": str(event_id), "fingerprint": fingerprint(reading), "received_at": now}


def _events(tenant_id: str, accepted: list[tuple[Submission, ItemVerdict]], now: datetime) -> list[Envelope[Any]]:
    events: list[Envelope[Any]] = []
    for item, verdict in accepted:
        reading = received_event(item.reading, tenant_id=tenant_id, event_id=verdict.event_id, now=now)
        events.append(reading)
        if item.status is not None:  # status bits sent with an accepted reading, caused by it
            events.append(new_envelope(
                item.status, event_id=uuid.uuid4(), tenant_id=tenant_id, key=item.status.meter_id,
                occurred_at=item.status.reported_at, recorded_at=now, producer=PRODUCER,
                correlation_id=reading.correlation_id, causation_id=reading.event_id,
            ))
    return events


async def stage_facts(session: AsyncSession, tenant_id: str, payloads: Sequence[Any], key: str,
                      occurred_at: datetime, now: datetime, causation_id: uuid.UUID | None = None) -> None:
    """Stage events into the caller's open transaction, so they commit with its other changes; device statuses
    among them also become their meters' last reported status (reports_db), in the same transaction."""
    await reports_db.note_statuses(session, tenant_id, (p for p in payloads if isinstance(p, DeviceStatusReported)))
    events = [new_envelope(p, event_id=uuid.uuid4(), tenant_id=tenant_id, key=key, occurred_at=occurred_at,
                           recorded_at=now, producer=PRODUCER, causation_id=causation_id) for p in payloads]
    await outbox.stage(session, db.outbox, events, now)


async def record_events(runtime: ServiceRuntime, tenant_id: str, payloads: Sequence[Any], key: str,
                        occurred_at: datetime, causation_id: uuid.UUID | None = None) -> None:
    """Stage facts that need no idempotency record (device status, rejections) in their own transaction."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        await stage_facts(session, tenant_id, payloads, key, occurred_at, now, causation_id)
    runtime.wake_relay()
