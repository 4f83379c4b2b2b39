"""VEE's reading handler on the full core: merge the reading into its metering point's series,
persist the state, publish new and corrected points and alarm episodes, update the aggregates —
all in the transaction that also records the event id (inbox) and the events (outbox).

The worker applies a consumed batch of readings as one `ReadingBatch`: locks, registry, rules and states
read once for the batch, each series' readings merged with one derivation, the states, points and buckets
written back in one statement each. The device status, the timer and edits handle one series at a time
(`series_of_meter`) under the same meter-then-series locks."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from amiflow_runtime.clock import Clock
from amiflow_runtime.db import lock_for_transaction, lock_many_for_transaction
from amiflow_runtime.outbox import stage
from amiflow_runtime.pipeline import BatchHandler, BatchScope, Handler
from amiflow_runtime.schedule import poll_offset
from amiflow_runtime.telemetry import consume_span, trace_headers
from amiflow_schemas import Envelope, EventPayload, decode_event, encode_event, new_envelope
from amiflow_schemas.events.alarms import AlarmCleared, AlarmRaised
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
from vee.core.rules import RuleSet

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
    await _locked_neighbourhood(session, tenant_id, meter_id)


async def _locked_neighbourhood(session: AsyncSession, tenant_id: str, meter_id: str) -> dict[str, MeterState]:
    await lock_for_transaction(session, tenant_id, "meter", meter_id)  # the registry handler takes this one too
    known = await registry_db.swap_neighbourhood(session, tenant_id, [meter_id])
    await lock_for_transaction(session, tenant_id, "series", registry_db.series_in(known, meter_id))
    # Read again under the series lock: the successor of a swap may have been defined (and read into the
    # series) while we waited. The series itself cannot have moved: a meter's predecessors change only
    # under its own lock, which we hold.
    return await registry_db.swap_neighbourhood(session, tenant_id, [meter_id])


def context_in(known: Mapping[str, MeterState], tenant_id: str, meter_id: str, zones: Zones) -> MeterContext | None:
    """The metering point of a meter: the meter in place and the ones it replaced, oldest first (None when
    the registry does not know the meter); `known` is the meter's swap neighbourhood."""
    chain = registry_db.chain_in(known, registry_db.newest_in(known, meter_id))
    if not chain:
        return None
    meter = chain[-1]
    interval, offset = read_grid_of(meter)
    return context_from_registry(meter, tenant_id=tenant_id, time_zone=zones(tenant_id), read_interval=interval,
                                 read_offset=offset, predecessors=chain[:-1])


async def context_of(session: AsyncSession, tenant_id: str, meter_id: str, zones: Zones) -> MeterContext | None:
    """The metering point of a meter: the meter in place and the ones it replaced, oldest first."""
    return context_in(await registry_db.swap_neighbourhood(session, tenant_id, [meter_id]), tenant_id, meter_id,
                      zones)


async def series_of_meter(session: AsyncSession, tenant_id: str, meter_id: str,
                         zones: Zones) -> tuple[MeterContext, MeterSeries, bool] | None:
    """Lock the meter and its series, then read its context and kept state (the timer, edits, statuses)."""
    context = context_in(await _locked_neighbourhood(session, tenant_id, meter_id), tenant_id, meter_id, zones)
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
    """ReadingReceived → ReadingValidated / ReadingCorrected / AlarmRaised / AlarmCleared, one event at a time
    (the batch scope with a batch of one)."""
    scope = reading_scope(clock, zones)

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        async with scope(session, [envelope]) as handle_one:
            emitted: Sequence[Envelope[Any]] = await handle_one(session, envelope)
        return emitted

    return handle


def series_batch_handler(clock: Clock, zones: Zones) -> BatchHandler:
    """The reading handler for a consumed batch: see `ReadingBatch`."""
    return BatchHandler(reading_scope(clock, zones))


def reading_scope(clock: Clock, zones: Zones) -> BatchScope:
    """Open a `ReadingBatch` on the batch's readings, yield its per-reading handler, write back at the end.
    On a failure nothing is written back: the pipeline rolls the transaction back."""

    @asynccontextmanager
    async def scope(session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> AsyncIterator[Handler]:
        batch = await ReadingBatch.open(session, envelopes, clock, zones)
        yield batch.handle
        await batch.write_back(session)

    return scope


@dataclass
class _SeriesInBatch:
    tenant_id: str
    state: MeterSeries
    current_meter_id: str
    touched: bool = False


@dataclass
class ReadingBatch:
    """The readings of one consumed batch, applied in one transaction with a few set-based statements.

    Opening it takes the locks of every meter and then of every series the batch touches (each set in
    sorted order, in one statement: two batches cannot deadlock), and reads the registry's swap
    neighbourhoods, the tenants' rule sets and the kept series states once. The readings of one series
    (a concentrator's store-and-forward upload, a backlog, the old and the new meter of a swap) are merged
    with one derivation when the first of them is handled, and each reading's call returns the events it
    caused: the series' points end exactly as if they had come one transaction each — the derivation is
    a function of the reads, not of their order — but a slot whose reading is in the batch is never first
    published as an estimate and then corrected, an alarm starts where the merged data shows it, and a
    day of hourly reads costs one derivation instead of 24. The write-back saves every touched state,
    inserts the published points and upserts the changed buckets in one statement each.
    """

    clock: Clock
    contexts: dict[tuple[str, str], MeterContext]  # (tenant, meter) → its metering point; absent: unknown
    rules: dict[str, RuleSet]
    series: dict[tuple[str, str], _SeriesInBatch]  # (tenant, series id)
    # (tenant, series id) → its readings in the batch, in delivery order, when there are several to merge
    merged: dict[tuple[str, str], list[Envelope[Any]]] = field(default_factory=dict)
    # A merged series' events by the reading they answer, each handed out by that reading's own call (in its
    # span, so every reading stays one trace); what answers none of them goes with the series' last reading.
    answers: dict[uuid.UUID, list[Envelope[Any]]] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    buckets: list[dict[str, Any]] = field(default_factory=list)
    alarms: list[tuple[str, AlarmRaised | AlarmCleared]] = field(default_factory=list)

    @classmethod
    async def open(cls, session: AsyncSession, envelopes: Sequence[Envelope[Any]], clock: Clock,
                   zones: Zones) -> ReadingBatch:
        meters: dict[str, set[str]] = {}
        for envelope in envelopes:
            if isinstance(envelope.payload, ReadingReceived):
                meters.setdefault(envelope.tenant_id, set()).add(envelope.payload.meter_id)
        await lock_many_for_transaction(session, [(t, "meter", m) for t, ids in meters.items() for m in ids])
        known = {t: await registry_db.swap_neighbourhood(session, t, ids) for t, ids in meters.items()}
        await lock_many_for_transaction(session, [(t, "series", registry_db.series_in(known[t], m))
                                                  for t, ids in meters.items() for m in ids])
        # Read again under the series locks, for the reason `_locked_neighbourhood` gives.
        known = {t: await registry_db.swap_neighbourhood(session, t, ids) for t, ids in meters.items()}
        contexts = {(t, m): context for t, ids in meters.items() for m in ids
                    if (context := context_in(known[t], t, m, zones)) is not None}
        tenants = {t for t, _ in contexts}
        rules = await rules_db.rule_sets(session, tenants)
        series: dict[tuple[str, str], _SeriesInBatch] = {}
        for tenant in sorted(tenants):
            ours = {c.series_id: c for (t, _), c in contexts.items() if t == tenant}
            kept = await series_db.load_many(session, tenant, ours)
            for series_id, context in ours.items():
                series[tenant, series_id] = _SeriesInBatch(
                    tenant, kept.get(series_id) or MeterSeries(series_id=series_id), context.devices[-1].meter_id)
        return cls(clock, contexts, rules, series, merged=_mergeable(envelopes, contexts))

    async def handle(self, session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        if not isinstance(envelope.payload, ReadingReceived):
            return []
        received: ReadingReceived = envelope.payload
        now = self.clock.now()
        context = self.contexts.get((envelope.tenant_id, received.meter_id))
        if context is None:  # rare (a meter registered a moment after its first reading): written at once
            return await _unknown_meter(session, envelope, received, now)
        key = (envelope.tenant_id, context.series_id)
        together = self.merged.pop(key, None)
        if together is None and envelope.event_id in self.answers:
            return self.answers.pop(envelope.event_id)  # merged when the series' first reading came
        readings = together or [envelope]
        series = self.series[key]
        outcome = engine.apply_readings(series.state, context, self.rules[envelope.tenant_id],
                                        [raw_read(e.payload, e.event_id) for e in readings], now)
        series.state, series.touched = outcome.state, True
        found = publication(Cause.of(readings[-1]), context, outcome, now,
                            causes={e.event_id: Cause.of(e) for e in readings})
        self.points += found.points
        self.buckets += found.buckets
        self.alarms += [(envelope.tenant_id, alarm) for alarm in found.alarms]
        if together is None:
            return found.events
        for reading in together:
            self.answers[reading.event_id] = []
        for event in found.events:
            answered = event.causation_id if event.causation_id in self.answers else together[-1].event_id
            self.answers[answered].append(event)
        return self.answers.pop(envelope.event_id)

    async def write_back(self, session: AsyncSession) -> None:
        await series_db.save_many(session, [series_db.SeriesToSave(s.tenant_id, s.state, s.current_meter_id)
                                            for s in self.series.values() if s.touched], self.clock.now())
        await series_db.insert_points(session, self.points)
        await series_db.upsert_buckets(session, self.buckets)
        for tenant_id, alarm in self.alarms:  # in order: a clear may follow its raise in the same batch
            await alarms_db.apply(session, tenant_id, alarm)


def _mergeable(envelopes: Sequence[Envelope[Any]],
               contexts: Mapping[tuple[str, str], MeterContext]) -> dict[tuple[str, str], list[Envelope[Any]]]:
    """The series with more than one reading in the batch, and their readings in delivery order.

    A series whose readings come through meters seen with different contexts (the registry changed between
    them, which a batch cannot show) is left to one derivation per reading."""
    found: dict[tuple[str, str], list[Envelope[Any]]] = {}
    seen: dict[tuple[str, str], MeterContext] = {}
    mixed: set[tuple[str, str]] = set()
    for envelope in envelopes:
        if not isinstance(envelope.payload, ReadingReceived):
            continue
        context = contexts.get((envelope.tenant_id, envelope.payload.meter_id))
        if context is None:
            continue  # an unknown meter's reading is held, not derived
        key = (envelope.tenant_id, context.series_id)
        if seen.setdefault(key, context) != context:
            mixed.add(key)
        found.setdefault(key, []).append(envelope)
    return {key: readings for key, readings in found.items() if len(readings) > 1 and key not in mixed}


@dataclass(frozen=True)
class Cause:
    """Who the events answer: the tenant and the ids that tie them to their input (none for the timer)."""

    tenant_id: str
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None

    @classmethod
    def of(cls, envelope: Envelope[Any]) -> Cause:
        return cls(envelope.tenant_id, envelope.correlation_id, envelope.event_id)


@dataclass(frozen=True)
class Publication:
    """What one outcome publishes: the events, and the rows of the read models they go with."""

    events: list[Envelope[Any]]
    points: list[dict[str, Any]]  # series_points rows
    buckets: list[dict[str, Any]]  # consumption_buckets rows
    alarms: list[AlarmRaised | AlarmCleared]


def publication(cause: Cause, context: MeterContext, outcome: engine.Outcome, now: datetime,
                causes: Mapping[uuid.UUID, Cause] | None = None) -> Publication:
    """The outcome's events and rows. `causes` names, for an outcome of several readings, the cause of each
    reading by its event id: a point is tied to the reading it came from (or closes the gap of), anything
    else to `cause`."""
    tenant = cause.tenant_id
    events: list[Envelope[Any]] = []
    published = []
    for fact in outcome.points:
        # The core's publication id is the event id: a correction's supersedes_event_id names it, and a
        # replay of the same input publishes the same ids.
        source = fact.point.source_event_id
        because = (causes or {}).get(source, cause) if source is not None else cause
        event = outgoing(reading_event(fact, context), because, fact.point.meter_id, fact.point.at, now,
                         event_id=fact.publication_id)
        events.append(event)
        published.append((fact, str(event.event_id)))
    alarms = []
    for alarm in outcome.alarms:
        payload = alarm_event(alarm, context.utility)
        events.append(outgoing(payload, cause, payload.subject_id, now, now))
        alarms.append(payload)
    unit = context.unit.value
    return Publication(events, series_db.point_rows(tenant, context.series_id, unit, published, now),
                       series_db.bucket_rows(tenant, context.series_id, unit, outcome.buckets, now), alarms)


async def publish_outcome(session: AsyncSession, cause: Cause, context: MeterContext, outcome: engine.Outcome,
                          now: datetime) -> list[Envelope[Any]]:
    """The outcome's events, with its points, buckets and alarms written to the read models."""
    found = publication(cause, context, outcome, now)
    await series_db.insert_points(session, found.points)
    await series_db.upsert_buckets(session, found.buckets)
    for alarm in found.alarms:
        await alarms_db.apply(session, cause.tenant_id, alarm)
    return found.events


async def _unknown_meter(session: AsyncSession, cause: Envelope[Any], received: ReadingReceived,
                         now: datetime) -> list[Envelope[Any]]:
    # Not dropped, never billed: the API shows it failed with its reason, and it is held to be validated
    # once the registry names the meter. No event goes out yet, so consumers see the slot's first
    # ReadingValidated only when it is real (a failed one first would need a correction for the real one).
    UNPLACED.labels(cause.tenant_id).inc()
    log.warning("reading of unknown meter %s held until the registry names it", received.meter_id)
    await series_db.record_failure(session, cause.tenant_id, received, str(cause.event_id), UNKNOWN_METER, now)
    await series_db.hold_unplaced(session, cause.tenant_id, received.meter_id, str(cause.event_id),
                                  encode_event(cause), now, trace_headers())
    return []


async def place_held_reads(session: AsyncSession, tenant_id: str, meter_id: str, clock: Clock,
                           zones: Zones) -> list[Envelope[Any]]:
    """Validate the readings held while the meter was unknown, now that the registry named it.

    Each in the trace it arrived in: its events are staged here, inside a span continuing that trace, so a
    reading stays one trace from the DTU to the balance even when it beat its meter's registration. Only what
    was held without a trace is returned, to go out in the registry event's.
    """
    held = await series_db.take_unplaced(session, tenant_id, meter_id)
    envelopes = [decode_event(h.envelope) for h in held]
    events: list[Envelope[Any]] = []
    async with reading_scope(clock, zones)(session, envelopes) as handle:
        for kept, envelope in zip(held, envelopes, strict=True):
            if not kept.trace:
                events += await handle(session, envelope)
                continue
            with consume_span(f"vee.validation {envelope.event_type} (held)", kept.trace,
                              **{"amiflow.event_id": str(envelope.event_id)}):
                await stage(session, db.outbox, await handle(session, envelope), clock.now())
    return events


def outgoing(payload: EventPayload, cause: Cause, key: str, occurred_at: datetime, now: datetime,
             event_id: uuid.UUID | None = None) -> Envelope[Any]:
    """An event VEE publishes, tied to what caused it."""
    return new_envelope(payload, event_id=event_id or uuid.uuid4(), tenant_id=cause.tenant_id, key=key,
                        occurred_at=occurred_at,
                        recorded_at=now, producer=PRODUCER, correlation_id=cause.correlation_id,
                        causation_id=cause.causation_id)
