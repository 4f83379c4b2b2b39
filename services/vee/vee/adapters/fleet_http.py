"""The operator console's fleet-wide reads: the morning overview and each meter's consumption over a period
(the map's colour grading)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_schemas.events.alarms import AlarmSeverity
from amiflow_schemas.events.readings import ValidationStatus
from amiflow_schemas.primitives import Utility
from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel

from vee.adapters import alarms_db, fleet_db
from vee.core.grid import DAY, bucket_cover, local_date, local_midnight

router = APIRouter(prefix="/v1", tags=["fleet"])
# The instants and days these reads accept: local calendars are computed around them, so they stay clear of
# datetime's own limits (year 1 and 9999) whatever the zone.
EARLIEST, LATEST = datetime(1900, 1, 2, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def _refused(problem: str, reason: str) -> HTTPException:
    return HTTPException(422, detail={"problem": problem, "reason": reason})


class ReadingCounts(BaseModel):
    """A local day's slots of every meter by the status of their newest version."""

    total: int
    actual: int
    estimated: int
    edited: int
    failed: int  # an implausible value, or a reading of a meter the registry does not know (yet)
    missing: int


class AlarmCounts(BaseModel):
    """Open alarms now (whatever the day), and how many were raised during the day."""

    open: int
    unacknowledged: int
    raised: int
    by_severity: dict[str, int]  # every severity, zero included
    by_kind: dict[str, int]  # alarm types with an open alarm


class OverviewView(BaseModel):
    """A local day of the whole fleet, as the console's overview shows it."""

    day: date
    time_zone: str
    day_start: datetime
    day_end: datetime
    readings: ReadingCounts
    meters_reporting: int  # meters with an actual reading measured that local day
    alarms: AlarmCounts
    as_of: datetime


@router.get("/overview", response_model=OverviewView)
async def overview(runtime: RuntimeDep, tenant: Tenant, day: date | None = None) -> Any:
    """A local day of the whole fleet (today in the tenant's zone unless named): readings by status, the meters
    that reported, and the alarms open now."""
    if day is not None and not EARLIEST.date() <= day < LATEST.date():
        raise _refused("day_out_of_range", f"the day must lie between {EARLIEST.date()} and {LATEST.date()}")
    now = runtime.clock.now()
    zone_name = runtime.settings.zone_of(tenant)
    zone = ZoneInfo(zone_name)
    day = day or local_date(now, zone)
    start, end = local_midnight(day, zone), local_midnight(day + DAY, zone)
    async with runtime.sessions() as session:
        statuses = await fleet_db.readings_by_status(session, tenant, start, end)
        reporting = await fleet_db.meters_reporting(session, tenant, start, end)
        alarms = await alarms_db.open_alarms(session, tenant)
        raised = await alarms_db.raised_between(session, tenant, start, end)
    readings = {s.value: statuses.get(s.value, 0) for s in ValidationStatus}
    return OverviewView(
        day=day, time_zone=zone_name, day_start=start, day_end=end,
        readings=ReadingCounts(total=sum(statuses.values()), **readings), meters_reporting=reporting,
        alarms=AlarmCounts(open=alarms.open, unacknowledged=alarms.unacknowledged, raised=raised,
                           by_severity={s.value: alarms.by_severity.get(s.value, 0) for s in AlarmSeverity},
                           by_kind=dict(sorted(alarms.by_kind.items()))),
        as_of=now)


class MeterTotalView(BaseModel):
    meter_id: str
    utility: str
    unit: str
    consumption: Decimal | None  # null: no data in the period (not the same as zero use)


class ConsumptionTotalsPage(BaseModel):
    """Each meter's consumption over [period_start, period_end): `from` and `to` rounded up to a local hour."""

    period_start: datetime
    period_end: datetime
    items: list[MeterTotalView]
    next: str | None  # pass as ?after= for the next page; null on the last one


@router.get("/consumption/totals", response_model=ConsumptionTotalsPage)
async def consumption_totals(runtime: RuntimeDep, tenant: Tenant,
                             since: Annotated[AwareDatetime, Query(alias="from")],
                             until: Annotated[AwareDatetime, Query(alias="to")],
                             utility: Utility | None = None,
                             after: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
                             limit: Annotated[int, Query(ge=1, le=50_000)] = 10_000) -> Any:
    """Consumption per meter over a period, by meter id: the sum of the hour buckets a curve over the same
    range shows, read as whole months, days and hours. A metering point whose meter was replaced is listed
    under the meter now in place, with the whole point's consumption."""
    if until <= since:
        raise _refused("empty_period", "`to` must be after `from`")
    if since < EARLIEST or until > LATEST:
        raise _refused("period_out_of_range", f"the period must lie between {EARLIEST} and {LATEST}")
    cover = bucket_cover(since, until, ZoneInfo(runtime.settings.zone_of(tenant)))
    async with runtime.sessions() as session:
        totals, following = await fleet_db.consumption_totals(
            session, tenant, cover, utility=utility.value if utility else None, after=after, limit=limit)
    return ConsumptionTotalsPage(period_start=cover.start, period_end=cover.end,
                                 items=[MeterTotalView(meter_id=t.meter_id, utility=t.utility, unit=t.unit,
                                                       consumption=t.consumption) for t in totals],
                                 next=following)
