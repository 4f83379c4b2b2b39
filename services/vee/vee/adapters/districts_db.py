"""District metered areas: their configuration (which meters measure the inflow), the evaluated days
(water balance and night flow per local day, updated by late data) and their alarm episodes."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from amiflow_runtime.db import ExactDecimal, UtcDateTime
from sqlalchemy import Boolean, Column, Date, Integer, String, Table, Text, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters.db import metadata
from vee.core.district import DistrictDay, DistrictState

districts = Table(
    "districts", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("district_id", String(64), primary_key=True),
    Column("name", String(200), nullable=True),
    Column("inflow_meter_ids", Text, nullable=False),  # JSON list: the bulk meters feeding the district
    Column("population", Integer, nullable=True),  # for night use where customers are not on AMI
    Column("state", Text, nullable=False),  # DistrictState (alarm episodes) as JSON
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

district_days = Table(
    "district_days", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("district_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("day_start", UtcDateTime(), nullable=False),
    Column("day_end", UtcDateTime(), nullable=False),
    Column("inflow", ExactDecimal(), nullable=True),
    Column("customer_use", ExactDecimal(), nullable=True),
    Column("non_revenue", ExactDecimal(), nullable=True),
    Column("non_revenue_share", ExactDecimal(), nullable=True),
    Column("actual_coverage", ExactDecimal(), nullable=True),
    Column("provisional", Boolean, nullable=False),
    Column("customer_meters", Integer, nullable=False),
    Column("night_hour_start", UtcDateTime(), nullable=True),
    Column("minimum_night_flow", ExactDecimal(), nullable=True),
    Column("legitimate_night_use", ExactDecimal(), nullable=True),
    Column("net_night_flow", ExactDecimal(), nullable=True),
    Column("night_baseline", ExactDecimal(), nullable=True),
    Column("night_alarm", Boolean, nullable=False),
    Column("alarms_evaluated", Boolean, nullable=False),  # alarms look at a day once, when it closes
    Column("evaluated_at", UtcDateTime(), nullable=False),
)


async def configure(session: AsyncSession, tenant_id: str, district_id: str, name: str | None,
                    inflow_meter_ids: list[str], population: int | None, updated_by: str, now: datetime) -> None:
    """Create or change a district; its alarm episodes survive a change."""
    key = and_(districts.c.tenant_id == tenant_id, districts.c.district_id == district_id)
    values = {"name": name, "inflow_meter_ids": json.dumps(sorted(set(inflow_meter_ids))), "population": population,
              "updated_by": updated_by, "updated_at": now}
    done = await session.execute(update(districts).where(key).values(**values))
    if done.rowcount == 0:  # type: ignore[attr-defined]
        state = DistrictState(district_id=district_id).model_dump_json()
        await session.execute(insert(districts).values(tenant_id=tenant_id, district_id=district_id, state=state,
                                                       **values))


def _district(row: Any) -> dict[str, Any]:
    return {"district_id": row.district_id, "name": row.name, "inflow_meter_ids": json.loads(row.inflow_meter_ids),
            "population": row.population, "updated_by": row.updated_by, "updated_at": row.updated_at}


async def district(session: AsyncSession, tenant_id: str, district_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(districts).where(districts.c.tenant_id == tenant_id,
                                                         districts.c.district_id == district_id))).first()
    return None if row is None else _district(row)


async def listing(session: AsyncSession, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """The districts of one tenant, or of all tenants (for the daily job), with their tenant."""
    query = select(districts).order_by(districts.c.tenant_id, districts.c.district_id)
    if tenant_id is not None:
        query = query.where(districts.c.tenant_id == tenant_id)
    return [{"tenant_id": r.tenant_id, **_district(r)} for r in await session.execute(query)]


async def load_state(session: AsyncSession, tenant_id: str, district_id: str) -> DistrictState:
    row = (await session.execute(select(districts.c.state).where(
        districts.c.tenant_id == tenant_id, districts.c.district_id == district_id))).one()
    return DistrictState.model_validate_json(row.state)


async def save_state(session: AsyncSession, tenant_id: str, state: DistrictState) -> None:
    await session.execute(update(districts).where(districts.c.tenant_id == tenant_id,
                                                  districts.c.district_id == state.district_id)
                          .values(state=state.model_dump_json()))


async def days(session: AsyncSession, tenant_id: str, district_id: str, first: date | None,
               last: date | None) -> list[dict[str, Any]]:
    """Evaluated days in [first, last], oldest first."""
    query = select(district_days).where(district_days.c.tenant_id == tenant_id,
                                        district_days.c.district_id == district_id)
    if first is not None:
        query = query.where(district_days.c.day >= first)
    if last is not None:
        query = query.where(district_days.c.day <= last)
    return [r._asdict() for r in await session.execute(query.order_by(district_days.c.day))]


async def record_day(session: AsyncSession, tenant_id: str, district_id: str, assessed: DistrictDay,
                     day_start: datetime, day_end: datetime, customer_meters: int, alarms_evaluated: bool,
                     now: datetime) -> None:
    """Set a day's figures (a re-evaluation after late data replaces them)."""
    balance, night = assessed.balance, assessed.night
    values: dict[str, Any] = {
        "day_start": day_start, "day_end": day_end, "customer_meters": customer_meters,
        "inflow": balance.inflow if balance else None, "customer_use": balance.customer_use if balance else None,
        "non_revenue": balance.non_revenue if balance else None,
        "non_revenue_share": balance.non_revenue_share if balance else None,
        "actual_coverage": balance.actual_coverage if balance else None,
        "provisional": balance.provisional if balance else True,
        "night_hour_start": night.hour_start if night else None,
        "minimum_night_flow": night.minimum_night_flow if night else None,
        "legitimate_night_use": night.legitimate_night_use if night else None,
        "net_night_flow": night.net_night_flow if night else None,
        "night_baseline": night.baseline if night else None,
        "night_alarm": bool(night and night.alarm), "alarms_evaluated": alarms_evaluated, "evaluated_at": now}
    key = and_(district_days.c.tenant_id == tenant_id, district_days.c.district_id == district_id,
               district_days.c.day == assessed.day)
    done = await session.execute(update(district_days).where(key).values(**values))
    if done.rowcount == 0:  # type: ignore[attr-defined]
        await session.execute(insert(district_days).values(tenant_id=tenant_id, district_id=district_id,
                                                           day=assessed.day, **values))


def minimums(rows: list[dict[str, Any]]) -> dict[date, Decimal]:
    """The recorded minimum night flows by day, for the rolling baseline."""
    return {r["day"]: r["minimum_night_flow"] for r in rows if r["minimum_night_flow"] is not None}
