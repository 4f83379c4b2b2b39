"""Rating's working state: each (account, tariff)'s tier periods and the readings rated into them (re-rating
replays them), and the readings no account pays for, held for an operator."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from amiflow_runtime.db import ExactDecimal, UtcDateTime, one_of
from amiflow_schemas.primitives import Unit, Utility
from sqlalchemy import Column, Integer, String, Table, Text, and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters.db import metadata, upsert
from billing.core.rating import MeterReading, TierPeriodState

tier_periods = Table(
    "tier_periods", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("tariff_id", String(64), primary_key=True),
    Column("period_start", UtcDateTime(), primary_key=True),
    Column("period_end", UtcDateTime(), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("exact_cost", ExactDecimal(), nullable=False),
)
rated_readings = Table(
    "rated_readings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # rating order
    Column("tenant_id", String(64), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("tariff_id", String(64), nullable=False),
    Column("reading_event_id", String(36), nullable=False, index=True),
    Column("meter_id", String(64), nullable=False),
    Column("utility", String(16), nullable=False),
    Column("span_start", UtcDateTime(), nullable=False),
    Column("span_end", UtcDateTime(), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("unit", String(8), nullable=False),
    Column("registers", Text, nullable=False),
)
# Validated readings nobody pays for yet: never charged to anyone, never lost (billing.md bad input).
unbilled_readings = Table(
    "unbilled_readings", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("meter_id", String(64), nullable=False, index=True),
    Column("measured_at", UtcDateTime(), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("held_at", UtcDateTime(), nullable=False),
)


async def periods(session: AsyncSession, tenant_id: str, account_id: str, tariff_id: str,
                  starts: Iterable[datetime]) -> dict[datetime, TierPeriodState]:
    wanted = list(starts)
    rows = await session.execute(select(tier_periods).where(
        tier_periods.c.tenant_id == tenant_id, tier_periods.c.account_id == account_id,
        tier_periods.c.tariff_id == tariff_id, tier_periods.c.period_start.in_(wanted)))
    return {r.period_start: TierPeriodState(r.period_start, r.period_end, r.quantity, r.exact_cost) for r in rows}


async def save_periods(session: AsyncSession, tenant_id: str, account_id: str, tariff_id: str,
                       states: dict[datetime, TierPeriodState]) -> None:
    for start, state in states.items():
        key = and_(tier_periods.c.tenant_id == tenant_id, tier_periods.c.account_id == account_id,
                   tier_periods.c.tariff_id == tariff_id, tier_periods.c.period_start == start)
        values = {"period_end": state.end, "quantity": state.quantity, "exact_cost": state.exact_cost}
        done = await session.execute(update(tier_periods).where(key).values(**values))
        if done.rowcount == 0:  # type: ignore[attr-defined]
            await session.execute(insert(tier_periods).values(tenant_id=tenant_id, account_id=account_id,
                                                              tariff_id=tariff_id, period_start=start, **values))


async def periods_of_accounts(session: AsyncSession, tenant_id: str,
                              wanted: Iterable[tuple[str, str, datetime]]) -> dict[tuple[str, str, datetime],
                                                                                 TierPeriodState]:
    """`periods` of many (account, tariff, period start) in one query; periods never rated are left out."""
    keys = set(wanted)
    if not keys:
        return {}
    rows = await session.execute(select(tier_periods).where(
        tier_periods.c.tenant_id == tenant_id,
        one_of(session, tier_periods.c.account_id, sorted({a for a, _, _ in keys})),
        one_of(session, tier_periods.c.period_start, sorted({s for _, _, s in keys}))))
    found = {}
    for r in rows:
        key = (r.account_id, r.tariff_id, r.period_start)
        if key in keys:
            found[key] = TierPeriodState(r.period_start, r.period_end, r.quantity, r.exact_cost)
    return found


async def save_periods_many(session: AsyncSession,
                            states: Iterable[tuple[str, str, str, TierPeriodState]]) -> None:
    """`save_periods` of (tenant, account, tariff, state) tuples in one statement."""
    await upsert(session, tier_periods, [
        {"tenant_id": tenant_id, "account_id": account_id, "tariff_id": tariff_id, "period_start": state.start,
         "period_end": state.end, "quantity": state.quantity, "exact_cost": state.exact_cost}
        for tenant_id, account_id, tariff_id, state in states])


def rated_row(tenant_id: str, account_id: str, tariff_id: str, reading: MeterReading) -> dict[str, Any]:
    """The rated_readings row `remember` inserts."""
    return {"tenant_id": tenant_id, "account_id": account_id, "tariff_id": tariff_id, **_values(reading)}


def held_row(tenant_id: str, event_id: str, meter_id: str, measured_at: datetime, reason: str, raw: str,
             now: datetime) -> dict[str, Any]:
    """The unbilled_readings row `hold` inserts."""
    return {"tenant_id": tenant_id, "event_id": event_id, "meter_id": meter_id, "measured_at": measured_at,
            "reason": reason, "envelope": raw, "held_at": now}


async def insert_many(session: AsyncSession, rated: Sequence[Mapping[str, Any]],
                      held: Sequence[Mapping[str, Any]]) -> None:
    """Rated readings (`rated_row`, in rating order: the ids follow the rows) and held ones (`held_row`)."""
    if rated:
        await session.execute(insert(rated_readings), list(rated))
    if held:
        await session.execute(insert(unbilled_readings), list(held))


async def rated_many(session: AsyncSession, tenant_id: str, reading_event_ids: Iterable[UUID]) -> dict[UUID, str]:
    """The account each of these readings was rated onto, by its current event id; unrated ones left out."""
    wanted = sorted({str(i) for i in reading_event_ids})
    if not wanted:
        return {}
    rows = await session.execute(select(rated_readings.c.reading_event_id, rated_readings.c.account_id).where(
        rated_readings.c.tenant_id == tenant_id, one_of(session, rated_readings.c.reading_event_id, wanted)))
    return {UUID(r.reading_event_id): str(r.account_id) for r in rows}


def _values(reading: MeterReading) -> dict[str, Any]:
    return {"reading_event_id": str(reading.reading_event_id), "meter_id": reading.meter_id,
            "utility": reading.utility.value, "span_start": reading.start, "span_end": reading.end,
            "quantity": reading.quantity, "unit": reading.unit.value,
            "registers": json.dumps([[name, str(q)] for name, q in reading.registers])}


async def remember(session: AsyncSession, tenant_id: str, account_id: str, tariff_id: str,
                   reading: MeterReading) -> None:
    await session.execute(insert(rated_readings).values(tenant_id=tenant_id, account_id=account_id,
                                                        tariff_id=tariff_id, **_values(reading)))


async def rated(session: AsyncSession, tenant_id: str, reading_event_id: UUID) -> tuple[str, str, MeterReading] | None:
    """(account, tariff, reading) of a rated reading by its current event id."""
    row = (await session.execute(select(rated_readings).where(
        rated_readings.c.tenant_id == tenant_id,
        rated_readings.c.reading_event_id == str(reading_event_id)))).first()
    return None if row is None else (row.account_id, row.tariff_id, _reading(row))


async def history(session: AsyncSession, tenant_id: str, account_id: str, tariff_id: str, since: datetime,
                  until: datetime) -> list[MeterReading]:
    """Every reading of the (account, tariff) whose span overlaps [since, until), in rating order."""
    rows = await session.execute(select(rated_readings).where(
        rated_readings.c.tenant_id == tenant_id, rated_readings.c.account_id == account_id,
        rated_readings.c.tariff_id == tariff_id, rated_readings.c.span_start < until,
        rated_readings.c.span_end > since).order_by(rated_readings.c.id))
    return [_reading(r) for r in rows]


async def replace_reading(session: AsyncSession, tenant_id: str, superseded: UUID, corrected: MeterReading) -> None:
    """The correction takes the superseded reading's place in the rating order."""
    await session.execute(update(rated_readings).where(
        rated_readings.c.tenant_id == tenant_id, rated_readings.c.reading_event_id == str(superseded),
    ).values(**_values(corrected)))


def _reading(row: Any) -> MeterReading:
    return MeterReading(UUID(row.reading_event_id), row.meter_id, Utility(row.utility), row.span_start, row.span_end,
                        row.quantity, Unit(row.unit), tuple((n, Decimal(q)) for n, q in json.loads(row.registers)))


async def hold(session: AsyncSession, tenant_id: str, event_id: str, meter_id: str, measured_at: datetime,
               reason: str, raw: str, now: datetime) -> None:
    await session.execute(insert(unbilled_readings).values(
        **held_row(tenant_id, event_id, meter_id, measured_at, reason, raw, now)))


async def held(session: AsyncSession, tenant_id: str, meter_id: str | None = None) -> list[dict[str, Any]]:
    query = select(unbilled_readings).where(unbilled_readings.c.tenant_id == tenant_id)
    if meter_id is not None:
        query = query.where(unbilled_readings.c.meter_id == meter_id)
    return [r._asdict() for r in await session.execute(query.order_by(unbilled_readings.c.measured_at))]


async def release(session: AsyncSession, tenant_id: str, meter_id: str) -> list[str]:
    """Take a meter's held readings (envelopes, oldest first) to rate them now that it has an account."""
    key = and_(unbilled_readings.c.tenant_id == tenant_id, unbilled_readings.c.meter_id == meter_id)
    rows = (await session.execute(select(unbilled_readings.c.envelope).where(key).order_by(
        unbilled_readings.c.measured_at))).all()
    await session.execute(delete(unbilled_readings).where(key))
    return [r.envelope for r in rows]
