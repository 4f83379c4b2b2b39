"""One account's usage curve for the customer portal and the console: consumption and its cost per meter,
by local day or month, from the charges billing rated (billing.core.usage says how they are bucketed)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from amiflow_runtime.auth import ACCOUNT_DATA
from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_schemas.events.billing import AdjustmentPosted, AdjustmentReason, ChargeApplied, ChargeKind
from amiflow_schemas.primitives import Unit, Utility
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import operations
from billing.adapters import queries
from billing.adapters.rating_db import rated_readings
from billing.adapters.web import answering_refusals, refusal_docs
from billing.core.periods import local_date
from billing.core.usage import Granularity, RangeError, RatedUsage, check_range, default_first, usage_series
from billing.operations import Refusal

router = APIRouter(prefix="/v1", tags=["usage"])


class UsagePointView(BaseModel):
    start: datetime  # the local day's or month's first instant, with the zone's offset
    consumption: Decimal
    amount: Decimal


class UsageSeriesView(BaseModel):
    meter_id: str
    utility: Utility
    unit: Unit
    points: list[UsagePointView]  # only buckets with something rated, oldest first


class UsageView(BaseModel):
    account_id: str
    granularity: Granularity
    time_zone: str
    currency: str
    series: list[UsageSeriesView]


async def rated_usage(session: AsyncSession, tenant_id: str, account_id: str, since: date) -> list[RatedUsage]:
    """Consumption charges and re-ratings of the account recorded from the local day ``since`` on.

    A re-rating counts at the end of the span of the reading it corrected (one query for all of them);
    a correction corrected again since then is found no more and counts when it was posted.
    """
    entries = await queries.entries_by_day(session, tenant_id, account_id=account_id, first=since,
                                           event_types=[ChargeApplied.EVENT_TYPE, AdjustmentPosted.EVENT_TYPE])
    found: list[RatedUsage] = []
    rerated: list[AdjustmentPosted] = []
    for entry in entries:
        p = entry.entry.payload
        if isinstance(p, ChargeApplied) and p.kind is ChargeKind.CONSUMPTION and p.quantity is not None \
                and p.quantity_unit is not None:
            found.append(RatedUsage(p.meter_id, p.utility, p.quantity_unit, p.period_end, p.quantity, p.amount))
        elif isinstance(p, AdjustmentPosted) and p.reason is AdjustmentReason.RE_RATED:
            rerated.append(p)
    ends = await _span_ends(session, tenant_id, [p.correction_event_id for p in rerated if p.correction_event_id])
    for p in rerated:
        if p.meter_id and p.utility and p.quantity_unit and p.quantity is not None:
            ends_at = ends.get(p.correction_event_id, p.posted_at) if p.correction_event_id else p.posted_at
            found.append(RatedUsage(p.meter_id, p.utility, p.quantity_unit, ends_at, p.quantity, p.amount))
    return found


async def _span_ends(session: AsyncSession, tenant_id: str, reading_ids: list[UUID]) -> dict[UUID, datetime]:
    if not reading_ids:
        return {}
    rows = await session.execute(select(rated_readings.c.reading_event_id, rated_readings.c.span_end).where(
        rated_readings.c.tenant_id == tenant_id,
        rated_readings.c.reading_event_id.in_(sorted({str(i) for i in reading_ids}))))
    return {UUID(r.reading_event_id): r.span_end for r in rows}


@router.get("/accounts/{account_id}/usage", openapi_extra=ACCOUNT_DATA, response_model=UsageView,
            responses={**refusal_docs(Refusal.NOT_FOUND),
                       422: {"description": "The range is out of order or too long (400 days, 36 months)"}})
async def usage(account_id: str, runtime: RuntimeDep, tenant: Tenant,
                first: Annotated[date | None, Query(alias="from", description="First local day; "
                                                    "default 30 days (12 months) before to")] = None,
                last: Annotated[date | None, Query(alias="to", description="Last local day, inclusive; "
                                                   "default today")] = None,
                granularity: Granularity = Granularity.DAY) -> Any:
    """The account's consumption and its cost per meter, by local day or month (in the account's zone)."""
    with answering_refusals():
        async with runtime.sessions() as session:
            account = await operations.account_of(session, tenant, account_id)
            last = last or local_date(runtime.clock.now(), account.zone)
            first = first or default_first(granularity, last)
            try:
                check_range(granularity, first, last)
            except RangeError as exc:
                raise HTTPException(422, detail={"problem": "invalid_range", "reason": str(exc)}) from None
            # A charge is recorded after its span ends; a day's margin for a meter clock a little ahead.
            rated = await rated_usage(session, tenant, account_id, first - timedelta(days=1))
    series = usage_series(rated, granularity, first, last, account.zone)
    return UsageView(account_id=account_id, granularity=granularity, time_zone=account.time_zone,
                     currency=account.currency, series=[UsageSeriesView(
                         meter_id=s.meter_id, utility=s.utility, unit=s.unit,
                         points=[UsagePointView(start=p.start, consumption=p.consumption, amount=p.amount)
                                 for p in s.points]) for s in series])
