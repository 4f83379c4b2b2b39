"""VEE's read API: validated readings per meter (with status, method and version) and consumption."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_schemas.events.readings import RegisterValue
from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters import registry_db, series_db
from vee.core.grid import Granularity


class ValidatedReadingView(BaseModel):
    """The newest version of one slot of a meter's validated series."""

    event_id: UUID
    meter_id: str
    measured_at: datetime
    version: int
    status: str
    method: str | None
    consumption: Decimal | None
    unit: str | None
    previous_at: datetime | None
    registers: list[RegisterValue]
    checks: list[str]
    edit: dict[str, Any] | None
    supersedes: UUID | None
    reason: str | None
    recorded_at: datetime


class ConsumptionBucketView(BaseModel):
    """Consumption in one local hour, day or month; all_actual says no estimate is in it."""

    start: datetime
    end: datetime
    consumption: Decimal
    unit: str
    all_actual: bool


router = APIRouter(prefix="/v1", tags=["readings"])
From = Annotated[AwareDatetime | None, Query(alias="from")]
To = Annotated[AwareDatetime | None, Query(alias="to")]


async def series_of(session: AsyncSession, tenant: str, meter_id: str) -> str:
    """The metering point a meter reads into: the first meter of its replacement chain."""
    current = meter_id
    for _ in range(50):
        state = await registry_db.meter_state(session, tenant, current)
        if state is None or state.replaces_meter_id is None:
            return current
        current = state.replaces_meter_id
    return current


@router.get("/meters/{meter_id}/readings", response_model=list[ValidatedReadingView])
async def meter_readings(meter_id: str, runtime: RuntimeDep, tenant: Tenant, since: From = None, until: To = None,
                         limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> Any:
    """The meter's validated series in [from, to), newest first: each slot's latest version."""
    async with runtime.sessions() as session:
        series = await series_of(session, tenant, meter_id)
        return await series_db.latest_points(session, tenant, series, since, until, limit)


@router.get("/meters/{meter_id}/consumption", response_model=list[ConsumptionBucketView])
async def meter_consumption(meter_id: str, runtime: RuntimeDep, tenant: Tenant, since: From = None,
                            until: To = None, granularity: Granularity = Granularity.DAY) -> Any:
    """Billable consumption per local hour, day (23 or 25 hours on DST days) or month, in [from, to)."""
    async with runtime.sessions() as session:
        series = await series_of(session, tenant, meter_id)
        rows = await series_db.buckets(session, tenant, series, granularity.value, since, until)
    return [{"start": r["bucket_start"], "end": r["bucket_end"], "consumption": r["consumption"], "unit": r["unit"],
             "all_actual": r["all_actual"]} for r in rows]
