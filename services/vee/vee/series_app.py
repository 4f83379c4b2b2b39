"""VEE's reading handler on the full core: merge the reading into its metering point's series,
persist the state, publish new and corrected points and alarm episodes, update the aggregates —
all in the transaction that also records the event id (inbox) and the events (outbox)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from amiflow_runtime.clock import Clock
from amiflow_runtime.db import lock_for_transaction
from amiflow_runtime.pipeline import Handler
from amiflow_schemas import Envelope, EventPayload, decode_event, encode_event, new_envelope
from amiflow_schemas.events.readings import ReadingReceived, ReadingValidated, ValidationStatus
from amiflow_schemas.events.registry import MeterState, ScheduleKind
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters import alarms_db, registry_db, series_db
from vee.core import engine
from vee.core.context import MeterContext, context_from_registry
from vee.core.events import alarm_event, reading_event
from vee.core.model import MeterSeries, raw_read
from vee.core.rules import RuleSet

PRODUCER = "vee"
UNKNOWN_METER = "unknown_meter"


def read_interval_of(meter: MeterState) -> timedelta:
    """The expected read interval: hourly meters hourly, everything else daily."""
    hourly = meter.schedule is not None and meter.schedule.kind is ScheduleKind.HOURLY
    return timedelta(hours=1) if hourly else timedelta(days=1)


async def context_of(session: AsyncSession, tenant_id: str, meter_id: str, time_zone: str) -> MeterContext | None:
    """The metering point of a meter: the meter and the ones it replaced, oldest first."""
    meter = await registry_db.meter_state(session, tenant_id, meter_id)
    if meter is None:
        return None
    chain: list[MeterState] = []
    previous = meter.replaces_meter_id
    while previous is not None and len(chain) < 50:  # a chain of swaps, never a cycle
        older = await registry_db.meter_state(session, tenant_id, previous)
        if older is None:
            break
        chain.insert(0, older)
        previous = older.replaces_meter_id
    return context_from_registry(meter, tenant_id=tenant_id, time_zone=time_zone,
                                 read_interval=read_interval_of(meter), predecessors=chain)


def series_handler(clock: Clock, time_zone: str) -> Handler:
    """ReadingReceived → ReadingValidated / ReadingCorrected / AlarmRaised / AlarmCleared."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        if not isinstance(envelope.payload, ReadingReceived):
            return []
        received: ReadingReceived = envelope.payload
        now = clock.now()
        await lock_for_transaction(session, envelope.tenant_id, "meter", received.meter_id)
        context = await context_of(session, envelope.tenant_id, received.meter_id, time_zone)
        if context is None:
            return await _unknown_meter(session, envelope, received, now)
        before = await series_db.load(session, envelope.tenant_id, context.series_id)
        state = before or MeterSeries(series_id=context.series_id)
        outcome = engine.apply_reading(state, context, RuleSet(tenant_id=envelope.tenant_id),
                                       raw_read(received, envelope.event_id), now)
        await series_db.save(session, envelope.tenant_id, outcome.state, before is not None, now)
        return await _publish(session, envelope, context, outcome, now)

    return handle


async def _publish(session: AsyncSession, cause: Envelope[Any], context: MeterContext, outcome: engine.Outcome,
                   now: datetime) -> list[Envelope[Any]]:
    tenant = cause.tenant_id
    events: list[Envelope[Any]] = []
    published = []
    for fact in outcome.points:
        event = _envelope(reading_event(fact, context), cause, fact.point.meter_id, fact.point.at, now)
        events.append(event)
        published.append((fact, str(event.event_id)))
    await series_db.record_points(session, tenant, context.series_id, context.unit.value, published, now)
    await series_db.record_buckets(session, tenant, context.series_id, context.unit.value, outcome.buckets, now)
    for alarm in outcome.alarms:
        payload = alarm_event(alarm, context.utility)
        events.append(_envelope(payload, cause, payload.subject_id, now, now))
        await alarms_db.apply(session, tenant, payload)
    return events


async def _unknown_meter(session: AsyncSession, cause: Envelope[Any], received: ReadingReceived,
                         now: datetime) -> list[Envelope[Any]]:
    # Not dropped, never billed: a failed reading the API shows with its reason (issue: bad input).
    failed = ReadingValidated(
        meter_id=received.meter_id, utility=received.utility, measured_at=received.measured_at,
        registers=received.registers, consumption=None, consumption_unit=None, previous_measured_at=None,
        status=ValidationStatus.FAILED, estimation_method=None, source_event_id=cause.event_id)
    event = _envelope(failed, cause, received.meter_id, received.measured_at, now)
    await series_db.record_failure(session, cause.tenant_id, received, str(event.event_id), UNKNOWN_METER, now)
    await series_db.hold_unplaced(session, cause.tenant_id, received.meter_id, str(cause.event_id),
                                  encode_event(cause), now)
    return [event]


async def place_held_reads(session: AsyncSession, tenant_id: str, meter_id: str, clock: Clock,
                           time_zone: str) -> list[Envelope[Any]]:
    """Validate the readings held while the meter was unknown, now that the registry named it."""
    handle = series_handler(clock, time_zone)
    events: list[Envelope[Any]] = []
    for raw in await series_db.take_unplaced(session, tenant_id, meter_id):
        events += await handle(session, decode_event(raw))
    return events


def _envelope(payload: EventPayload, cause: Envelope[Any], key: str, occurred_at: datetime,
              now: datetime) -> Envelope[Any]:
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=cause.tenant_id, key=key, occurred_at=occurred_at,
                        recorded_at=now, producer=PRODUCER, correlation_id=cause.correlation_id,
                        causation_id=cause.event_id)
