"""Billing's HTTP API: every router of the api process, and the meters' consumption as billing has seen it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from amiflow_runtime.http import RuntimeDep, Tenant
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from billing.adapters import (
    accounts_http,
    db,
    ledger_http,
    orders_http,
    overview_http,
    payments_http,
    reports_http,
    statements_http,
    tariffs_http,
    usage_http,
)


class MeterConsumptionView(BaseModel):
    """Billable consumption billing has recorded for one meter."""

    meter_id: str
    utility: str
    unit: str | None
    total_consumption: Decimal
    readings: int
    last_measured_at: datetime


consumption_router = APIRouter(prefix="/v1", tags=["consumption"])


@consumption_router.get("/meters/{meter_id}/consumption", response_model=MeterConsumptionView,
                        responses={404: {"description": "Billing has no validated reading of this meter"}})
async def meter_consumption(meter_id: str, runtime: RuntimeDep, tenant: Tenant) -> MeterConsumptionView:
    """The meter's billable consumption so far."""
    async with runtime.sessions() as session:
        state = await db.load(session, tenant, meter_id)
    if state is None:
        raise HTTPException(404, detail=f"no validated reading of meter {meter_id} has reached billing")
    return MeterConsumptionView(meter_id=state.meter_id, utility=state.utility.value,
                                unit=state.unit.value if state.unit else None, total_consumption=state.total,
                                readings=state.readings, last_measured_at=state.last_measured_at)


# The api process serves this one router (main.api): accounts, tariffs, money, statements, reports, and what
# the console and the customer portal read (account list, overview, usage) and pay with (payment orders).
router = APIRouter()
for _routes in (consumption_router, accounts_http.router, tariffs_http.router, ledger_http.router,
                payments_http.router, statements_http.router, reports_http.router, overview_http.router,
                usage_http.router, orders_http.router):
    router.include_router(_routes)
