"""District metered areas: configure which meters measure a district's inflow, read its daily balance."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from amiflow_runtime.auth import CONFIGURATION
from amiflow_runtime.http import RuntimeDep, Tenant
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from vee.adapters import districts_db, registry_db

router = APIRouter(prefix="/v1", tags=["districts"])
DistrictId = Annotated[str, Field(min_length=1, max_length=64)]


class DistrictBody(BaseModel):
    """The bulk meters feeding the district; its customers are the meters the registry puts in it."""

    name: str | None = Field(default=None, max_length=200)
    inflow_meter_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(min_length=1, max_length=50)
    population: int | None = Field(default=None, ge=0)  # night use where customers are not on AMI
    updated_by: str = Field(min_length=1, max_length=128)


class DistrictView(BaseModel):
    district_id: str
    name: str | None
    inflow_meter_ids: list[str]
    population: int | None
    updated_by: str
    updated_at: datetime


class DistrictDayView(BaseModel):
    """One local day: inflow, customer use, non-revenue water and its share, how much was actually read,
    and the minimum night flow against its baseline (m3/h)."""

    day: date
    day_start: datetime
    day_end: datetime
    inflow: Decimal | None
    customer_use: Decimal | None
    non_revenue: Decimal | None
    non_revenue_share: Decimal | None
    actual_coverage: Decimal | None
    provisional: bool
    customer_meters: int
    night_hour_start: datetime | None
    minimum_night_flow: Decimal | None
    legitimate_night_use: Decimal | None
    net_night_flow: Decimal | None
    night_baseline: Decimal | None
    night_alarm: bool
    evaluated_at: datetime


@router.put("/districts/{district_id}", openapi_extra=CONFIGURATION, response_model=DistrictView,
            responses={422: {"description": "An inflow meter is not in the registry"}})
async def configure_district(district_id: DistrictId, body: DistrictBody, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Create or change a district; the daily job evaluates it from the next run on."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        unknown = [m for m in body.inflow_meter_ids if await registry_db.meter_state(session, tenant, m) is None]
        if unknown:
            raise HTTPException(422, detail=f"inflow meters not in the registry: {', '.join(unknown)}")
        await districts_db.configure(session, tenant, district_id, body.name, body.inflow_meter_ids,
                                     body.population, body.updated_by, now)
        return await districts_db.district(session, tenant, district_id)


@router.get("/districts", response_model=list[DistrictView])
async def list_districts(runtime: RuntimeDep, tenant: Tenant) -> Any:
    async with runtime.sessions() as session:
        return await districts_db.listing(session, tenant)


@router.get("/districts/{district_id}/balance", response_model=list[DistrictDayView],
            responses={404: {"description": "No such district"}})
async def district_balance(district_id: DistrictId, runtime: RuntimeDep, tenant: Tenant,
                           first: Annotated[date | None, Query(alias="from")] = None,
                           last: Annotated[date | None, Query(alias="to")] = None) -> Any:
    """The district's water balance per local day in [from, to] (dates in the tenant's zone)."""
    async with runtime.sessions() as session:
        if await districts_db.district(session, tenant, district_id) is None:
            raise HTTPException(404, detail=f"no district {district_id}")
        return await districts_db.days(session, tenant, district_id, first, last)
