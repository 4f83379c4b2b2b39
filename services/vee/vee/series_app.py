"""VEE's reading handler on the full core: merge the reading into its metering point's series,
persist the state, publish new and corrected points and alarm episodes, update the aggregates —
all in the transaction that also records the event id (inbox) and the events (outbox)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from amiflow_runtime.clock import Clock
from amiflow_runtime.db import lock_for_transaction
from amiflow_runtime.outbox import stage
from amiflow_runtime.pipeline import Handler
from amiflow_runtime.schedule import poll_offset
from amiflow_schemas import Envelope, EventPayload, decode_event, encode_event, new_envelope
from amiflow_schemas.events.devices import DeviceStatusReported
from amiflow_schemas.events.readings import ReadingReceived
from amiflow_schemas.events.registry import MeterState, ScheduleKind
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters import alarms_db, db, registry_db, rules_db, series_db
from vee.core import engine
from vee.core.context import MeterContext, context_from_registry
from vee.core.device_alarms import device_status
from vee.core.events import alarm_event, reading_event
from vee.core.model import MeterSeries, raw_read

PRODUCER = "vee"
UNPLACED = Counter("amiflow_vee_unplaced_reads_total", "Readings of meters VEE did not know yet (held)", ["tenant"])
log = logging.getLogger("vee.series")
UNKNOWN_METER = "unknown_meter"
SETTLE_AFTER = timedelta(days=40)  # beyond the 35-day estimation limit (vee.md §2)
Zones = Callable[[str], str]  # tenant id → IANA zone of its local days and meter clocks


def read_grid_of(meter: MeterState) -> tuple[timedelta, timedelta]:
    """(interval, offset) the meter's readings are expected at: daily polls daily at their local time,
    everything else hourly (push and HTTP meters included); the offset is the poll jitter ingest uses."""
    schedule = meter.schedule
    if schedule is None or schedule.kind is not ScheduleKind.DAILY:
        interval = timedelta(hours=1)
    else:
        interval = timedelta(days=1)
    jitter = schedule.jitter_s if schedule is not None else 0
    return interval, poll_offset(meter.meter_id, jitter) % interval


async def lock_series(session: AsyncSession, tenant_id: str, meter_id: str) -> None:
    """Serialise the transactions of a meter and of its metering point: the old and the new meter of a
    swap have two Kafka keys (two partitions, two consumers) but one series."""
    await lock_for_transaction(session, tenant_id, "meter", meter_id)  # the registry handler takes this one too
    await lock_for_transaction(session, tenant_id, "series", await registry_db.series_of(session, tenant_id, meter_id))


async def context_of(session: AsyncSession, tenant_id: str, meter_id: str, zones: Zones) -> MeterContext | None:
    """The metering point of a meter: the meter in place and the ones it replaced, oldest first."""
    newest = await registry_db.newest_of(session, tenant_id, meter_id)
    chain = await registry_db.replacement_chain(session, tenant_id, newest)
    if not chain:
        return None
    meter = chain[-1]
    interval, offset = read_grid_of(meter)
    return context_from_registry(meter, tenant_id=tenant_id, time_zone=zones(tenant_id), read_interval=interval,
                                 read_offset=offset, predecessors=chain[:-1])


async def series_of_meter(session: AsyncSession, tenant_id: str, meter_id: str,
                         zones: Zones) -> tuple[MeterContext, MeterSeries, bool] | None:
    await lock_series(session, tenant_id, meter_id)
    context = await context_of(session, tenant_id, meter_id, zones)
    if context is None:
        return None
    before = await series_db.load(session, tenant_id, context.series_id)
    return context, before or MeterSeries(series_id=context.series_id), before is not None


def status_handler(clock: Clock, zones: Zones) -> Handler:
    """DeviceStatusReported → device alarm episodes (valve abnormal, battery, tamper, backflow, drift)."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        if not isinstance(envelope.payload, DeviceStatusReported):
            return []
        found = await series_of_meter(session, envelope.tenant_id, envelope.payload.meter_id, zones)
        if found is None:
            return []  # the status of an unknown meter raises nothing; its readings say why it fails
        context, state, existed = found
        now = clock.now()
        outcome = engine.apply_device_status(state, context, await rules_db.rule_set(session, envelope.tenant_id),
                                             device_status(envelope.payload), now)
        await series_db.save(session, envelope.tenant_id, outcome.state, existed, now, context.devices[-1].meter_id)
        return await publish_outcome(session, Cause.of(envelope), context, outcome, now)

    return handle


async def estimate_silent_meters(sessions: Any, clock: Clock, zones: Zones, wake_relay: Any) -> int:
    """The estimation timer: every series that stayed silent past the wait is estimated up to now and
    checked for lost communication; returns how many series produced events."""
    now = clock.now()
    async with sessions() as session:
        keys = await series_db.series_keys(session)
    touched = 0
    for tenant_id, current_meter in keys:
        async with sessions() as session, session.begin():
            found = await series_of_meter(session, tenant_id, current_meter, zones)
            if found is None:
                continue
            context, state, existed = found
            rules = await rules_db.rule_set(session, tenant_id)
            outcome = engine.estimate_silent(state, context, rules, now, now)
            # Settle what is older than any late read or correction may reach: bounds state and work.
            kept = engine.prune(outcome.state, context, rules, now - SETTLE_AFTER)
            if kept == state and not outcome.points and not outcome.alarms:
                continue
            await series_db.save(session, tenant_id, kept, existed, now, context.devices[-1].meter_id)
            events = await publish_outcome(session, Cause(tenant_id), context, outcome, now)
            await stage(session, db.outbox, events, now)
            touched += 1
    if touched:
        wake_relay()
    return touched


def series_handler(clock: Clock, zones: Zones) -> Handler:
    """ReadingReceived → ReadingValidated / ReadingCorrected / AlarmRaised / AlarmCleared."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        if not isinstance(envelope.payload, ReadingReceived):
            return []
        received: ReadingReceived = envelope.payload
        now = clock.now()
        await lock_series(session, envelope.tenant_id, received.meter_id)
        context = await context_of(session, envelope.tenant_id, received.meter_id, zones)
        if context is None:
            return await _unknown_meter(session, envelope, received, now)
        before = await series_db.load(session, envelope.tenant_id, context.series_id)
        state = before or MeterSeries(series_id=context.series_id)
        outcome = engine.apply_reading(state, context, await rules_db.rule_set(session, envelope.tenant_id),
                                       raw_read(received, envelope.event_id), now)
        await series_db.save(session, envelope.tenant_id, outcome.state, before is not None, now,
                             context.devices[-1].meter_id)
        return await publish_outcome(session, Cause.of(envelope), context, outcome, now)

    return handle


@dataclass(frozen=True)
class Cause:
    """Who the events answer: the tenant and the ids that tie them to their input (none for the timer)."""

    tenant_id: str
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None

    @classmethod
    def of(cls, envelope: Envelope[Any]) -> Cause:
        return cls(envelope.tenant_id, envelope.correlation_id, envelope.event_id)


async def publish_outcome(session: AsyncSession, cause: Cause, context: MeterContext, outcome: engine.Outcome,
                   now: datetime) -> list[Envelope[Any]]:
    tenant = cause.tenant_id
    events: list[Envelope[Any]] = []
    published = []
    for fact in outcome.points:
        # The core's publication id is the event id: a correction's supersedes_event_id names it, and a
        # replay of the same input publishes the same ids.
        event = outgoing(reading_event(fact, context), cause, fact.point.meter_id, fact.point.at, now,
                          event_id=fact.publication_id)
        events.append(event)
        published.append((fact, str(event.event_id)))
    await series_db.record_points(session, tenant, context.series_id, context.unit.value, published, now)
    await series_db.record_buckets(session, tenant, context.series_id, context.unit.value, outcome.buckets, now)
    for alarm in outcome.alarms:
        payload = alarm_event(alarm, context.utility)
        events.append(outgoing(payload, cause, payload.subject_id, now, now))
        await alarms_db.apply(session, tenant, payload)
    return events


async def _unknown_meter(session: AsyncSession, cause: Envelope[Any], received: ReadingReceived,
                         now: datetime) -> list[Envelope[Any]]:
    # Not dropped, never billed: the API shows it failed with its reason, and it is held to be validated
    # once the registry names the meter. No event goes out yet, so consumers see the slot's first
    # ReadingValidated only when it is real (a failed one first would need a correction for the real one).
    UNPLACED.labels(cause.tenant_id).inc()
    log.warning("reading of unknown meter %s held until the registry names it", received.meter_id)
    await series_db.record_failure(session, cause.tenant_id, received, str(cause.event_id), UNKNOWN_METER, now)
    await series_db.hold_unplaced(session, cause.tenant_id, received.meter_id, str(cause.event_id),
                                  encode_event(cause), now)
    return []


async def place_held_reads(session: AsyncSession, tenant_id: str, meter_id: str, clock: Clock,
                           zones: Zones) -> list[Envelope[Any]]:
    """Validate the readings held while the meter was unknown, now that the registry named it."""
    handle = series_handler(clock, zones)
    events: list[Envelope[Any]] = []
    for raw in await series_db.take_unplaced(session, tenant_id, meter_id):
        events += await handle(session, decode_event(raw))
    return events


def outgoing(payload: EventPayload, cause: Cause, key: str, occurred_at: datetime, now: datetime,
             event_id: uuid.UUID | None = None) -> Envelope[Any]:
    """An event VEE publishes, tied to what caused it."""
    return new_envelope(payload, event_id=event_id or uuid.uuid4(), tenant_id=cause.tenant_id, key=key,
                        occurred_at=occurred_at,
                        recorded_at=now, producer=PRODUCER, correlation_id=cause.correlation_id,
                        causation_id=cause.causation_id)
