"""Billing's reading handler: every ReadingValidated is rated onto the account paying for its meter
(ChargeApplied), every ReadingCorrected re-rated (AdjustmentPosted), the balance state assessed — in
the transaction that records the event id (inbox) and the events (outbox)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from amiflow_runtime.clock import Clock
from amiflow_runtime.pipeline import Handler, Rejected
from amiflow_schemas import Envelope, encode_event, new_envelope
from amiflow_schemas.events.alarms import AlarmRaised, AlarmSeverity, AlarmSubject, AlarmType
from amiflow_schemas.events.readings import ReadingCorrected, ReadingValidated
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from billing import posting
from billing.adapters import db, rating_db, store
from billing.core.consumption import UnitMismatch, evolve
from billing.core.rating import MeterReading, RatingError, periods_of, rate_reading, reading_of
from billing.core.rerating import affected_periods, corrected_reading, rerate

log = logging.getLogger("billing.rating")
UNBILLED = Counter("amiflow_billing_unbilled_readings_total", "Validated readings held: no account pays for them",
                   ["tenant"])
# Event ids derived from the input: a redelivered reading (past the inbox's retention) rates to the same ids.
CHARGE_NAMESPACE = uuid.UUID("0b6f7c1e-59a5-4f0c-9a55-2d8e3c1f6a10")


def reading_handler(clock: Clock) -> Handler:
    """ReadingValidated → ChargeApplied; ReadingCorrected → AdjustmentPosted; then the balance state."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        payload = envelope.payload
        if not isinstance(payload, ReadingValidated | ReadingCorrected):
            return []
        await _fold_consumption(session, envelope)
        now = clock.now()
        if isinstance(payload, ReadingCorrected):
            found = await rating_db.rated(session, envelope.tenant_id, payload.supersedes_event_id)
            if found is not None:
                return await rerate_found(session, envelope, found, now)
        return await rate(session, envelope, now)

    return handle


async def _fold_consumption(session: AsyncSession, envelope: Envelope[Any]) -> None:
    # The per-meter totals behind GET /v1/meters/{id}/consumption (first versions only).
    if not isinstance(envelope.payload, ReadingValidated):
        return
    before = await db.load(session, envelope.tenant_id, envelope.payload.meter_id)
    try:
        after = evolve(before, envelope.payload)
    except UnitMismatch as exc:
        raise Rejected(str(exc)) from exc  # dead-lettered with the reason for an operator to resolve
    await db.save(session, envelope.tenant_id, after, before is not None)


async def rate(session: AsyncSession, envelope: Envelope[Any], now: datetime) -> list[Envelope[Any]]:
    """Rate one validated reading onto the account paying for its meter, or hold it for an operator."""
    tenant, payload = envelope.tenant_id, envelope.payload
    reading = reading_of(envelope.event_id, payload)
    if reading is None:
        return []  # nothing billable: failed, missing, or a first reading without a span
    account_id = await store.account_paying(session, tenant, reading.meter_id, reading.end)
    if account_id is None:
        return await _hold(session, envelope, reading, f"no account pays for meter {reading.meter_id} at "
                                                       f"{reading.end.isoformat()}", now)
    await posting.lock_account(session, tenant, account_id)
    account = await store.load_account(session, tenant, account_id)
    link = account.link_at(reading.meter_id, reading.end) if account else None
    tariff = await store.load_tariff(session, tenant, link.tariff_id) if link else None
    if account is None or link is None or tariff is None:
        return await _hold(session, envelope, reading, f"account {account_id} has no tariff for the meter", now)
    try:
        states = await rating_db.periods(session, tenant, account_id, link.tariff_id,
                                         (start for start, _ in periods_of(reading, account, tariff)))
        rating = rate_reading(reading, account, tariff, states)
    except RatingError as exc:
        return await _hold(session, envelope, reading, str(exc), now)
    await rating_db.save_periods(session, tenant, account_id, link.tariff_id, rating.periods)
    await rating_db.remember(session, tenant, account_id, link.tariff_id, reading)
    if rating.charge is None:
        return []
    charge_id = uuid.uuid5(CHARGE_NAMESPACE, f"{tenant}/{envelope.event_id}")
    await posting.post(session, tenant, account, [rating.charge], now, envelope, [charge_id])
    return []  # posted events are staged by the store, with their projections


async def rerate_found(session: AsyncSession, envelope: Envelope[Any], found: tuple[str, str, MeterReading],
                       now: datetime) -> list[Envelope[Any]]:
    """Re-rate the rated reading a correction supersedes (``found`` by `rating_db.rated`): AdjustmentPosted."""
    tenant, payload = envelope.tenant_id, envelope.payload
    account_id, tariff_id, superseded = found
    await posting.lock_account(session, tenant, account_id)
    account = await store.load_account(session, tenant, account_id)
    tariff = await store.load_tariff(session, tenant, tariff_id)
    if account is None or tariff is None:
        raise Rejected(f"rated reading {superseded.reading_event_id} names a missing account or tariff")
    corrected = corrected_reading(envelope.event_id, payload, superseded)
    affected = affected_periods(superseded, corrected, account, tariff)
    history = await rating_db.history(session, tenant, account_id, tariff_id, affected[0][0], affected[-1][1])
    states = await rating_db.periods(session, tenant, account_id, tariff_id, (start for start, _ in affected))
    try:
        result = rerate(superseded.reading_event_id, corrected, history, account, tariff, states, now)
    except RatingError as exc:
        raise Rejected(f"re-rating {envelope.event_id}: {exc}") from exc
    await rating_db.save_periods(session, tenant, account_id, tariff_id, result.periods)
    await rating_db.replace_reading(session, tenant, superseded.reading_event_id, corrected)
    if result.adjustment is None:
        return []
    adjustment_id = uuid.uuid5(CHARGE_NAMESPACE, f"{tenant}/{envelope.event_id}")
    await posting.post(session, tenant, account, [result.adjustment], now, envelope, [adjustment_id])
    return []


async def _hold(session: AsyncSession, envelope: Envelope[Any], reading: MeterReading, reason: str,
                now: datetime) -> list[Envelope[Any]]:
    """Charged to nobody and not lost: kept until an account pays for the meter, and an operator alarm."""
    await rating_db.insert_many(session, [], [held(envelope, reading, reason, now)])
    return [unbilled_alarm(envelope, reading, reason, now)]


def held(envelope: Envelope[Any], reading: MeterReading, reason: str, now: datetime) -> dict[str, Any]:
    """The unbilled_readings row of a reading held for an operator (counted and logged here)."""
    tenant = envelope.tenant_id
    UNBILLED.labels(tenant).inc()
    log.warning("reading %s of meter %s held unbilled: %s", envelope.event_id, reading.meter_id, reason)
    return rating_db.held_row(tenant, str(envelope.event_id), reading.meter_id, reading.end, reason,
                              encode_event(envelope).decode(), now)


def unbilled_alarm(envelope: Envelope[Any], reading: MeterReading, reason: str, now: datetime) -> Envelope[Any]:
    """The operator alarm of a held reading; its ids derive from the reading (a redelivery raises the same)."""
    tenant = envelope.tenant_id
    alarm = AlarmRaised(
        alarm_id=uuid.uuid5(CHARGE_NAMESPACE, f"{tenant}/unbilled/{envelope.event_id}"),
        alarm_type=AlarmType.UNBILLED_CONSUMPTION, severity=AlarmSeverity.WARNING, subject=AlarmSubject.METER,
        subject_id=reading.meter_id, utility=reading.utility, rule_id="billing-unbilled", detected_at=now,
        window_start=reading.start, window_end=reading.end, observed_value=None, threshold_value=None,
        value_unit=None, description=f"consumption {reading.quantity} {reading.unit.value} not billed: {reason}")
    return new_envelope(alarm, event_id=uuid.uuid5(CHARGE_NAMESPACE, f"{tenant}/unbilled-alarm/{envelope.event_id}"),
                        tenant_id=tenant, key=reading.meter_id, occurred_at=now, recorded_at=now,
                        producer=store.PRODUCER, correlation_id=envelope.correlation_id,
                        causation_id=envelope.event_id)
