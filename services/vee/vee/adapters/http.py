"""VEE's read API: validated readings per meter (with status, method and version) and consumption."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from amiflow_runtime.http import Caller, RuntimeDep, Tenant, signed_by
from amiflow_schemas.events.readings import RegisterValue
from amiflow_schemas.primitives import Identifier, Text, Utility
from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, Field

from vee import edits_app as edits
from vee.adapters import registry_db, series_db
from vee.adapters.reach import meter_in_reach
from vee.core.aggregation import time_share
from vee.core.grid import Granularity, seconds
from vee.edits_app import EditRequest


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
    """Consumption in one local hour, day or month; all_actual says no estimate is in it.

    A period without data has no bucket; a bucket that lost its data (a read found implausible) shows
    zero with covered_share 0. The shares are of the bucket's time (of each member's, for a group), null
    when the bucket was last written before VEE kept them.
    """

    start: datetime
    end: datetime
    consumption: Decimal
    unit: str
    all_actual: bool
    complete: bool  # every second has data, estimates included
    covered_share: Decimal | None  # share of the time with data
    estimated_share: Decimal | None  # share of the time estimated (within covered_share)


def _coverage(start: datetime, end: datetime, covered_s: Decimal | None, estimated_s: Decimal | None,
              complete: bool, all_actual: bool, meters: int = 1) -> dict[str, Any]:
    """The coverage fields of a bucket view; what complete and all_actual settle needs no kept seconds."""
    whole = seconds(end - start) * meters
    covered = Decimal(1) if complete else None if covered_s is None else time_share(covered_s, whole)
    estimated = Decimal(0) if all_actual else None if estimated_s is None else time_share(estimated_s, whole)
    return {"complete": complete, "all_actual": all_actual, "covered_share": covered, "estimated_share": estimated}


router = APIRouter(prefix="/v1", tags=["readings"])
From = Annotated[AwareDatetime | None, Query(alias="from")]
To = Annotated[AwareDatetime | None, Query(alias="to")]


@router.get("/meters/{meter_id}/readings", response_model=list[ValidatedReadingView])
async def meter_readings(meter_id: str, runtime: RuntimeDep, tenant: Tenant, since: From = None, until: To = None,
                         limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> Any:
    """The meter's validated series in [from, to), newest first: each slot's latest version."""
    async with runtime.sessions() as session:
        series = await registry_db.series_of(session, tenant, meter_id)
        return await series_db.latest_points(session, tenant, series, since, until, limit)


@router.get("/meters/{meter_id}/consumption", response_model=list[ConsumptionBucketView])
async def meter_consumption(meter_id: str, runtime: RuntimeDep, tenant: Tenant, since: From = None,
                            until: To = None, granularity: Granularity = Granularity.DAY) -> Any:
    """Billable consumption per local hour, day (23 or 25 hours on DST days) or month, in [from, to)."""
    async with runtime.sessions() as session:
        series = await registry_db.series_of(session, tenant, meter_id)
        rows = await series_db.buckets(session, tenant, series, granularity.value, since, until)
    return [{"start": r["bucket_start"], "end": r["bucket_end"], "consumption": r["consumption"], "unit": r["unit"],
             **_coverage(r["bucket_start"], r["bucket_end"], r["covered_s"], r["estimated_s"], r["complete"],
                         r["all_actual"])} for r in rows]


class EditBody(BaseModel):
    """A manual edit: the new register value (null deletes the slot's value), who and why."""

    # The edit log's own types (core.model.ManualEdit), so what passes here can be recorded there.
    value: Decimal | None = Field(ge=0)
    edited_by: Identifier
    reason_code: Annotated[Identifier, Field(max_length=64)]
    comment: Text | None = None


class EditView(BaseModel):
    edit_id: UUID
    measured_at: datetime
    value: Decimal | None
    edited_by: str
    edited_at: datetime
    reason_code: str
    comment: str | None


@router.post("/meters/{meter_id}/readings/{measured_at}/edits", status_code=201,
             responses={404: {"description": "Unknown meter"}, 422: {"description": "The edit fails validation"}})
async def edit_reading(meter_id: str, measured_at: AwareDatetime, body: EditBody, runtime: RuntimeDep,
                       tenant: Tenant, caller: Caller) -> Any:
    """Edit (or delete) the value at a slot: a new version; the original and every edit are kept."""
    async with runtime.sessions() as session:
        await meter_in_reach(session, tenant, caller, meter_id)
    request = EditRequest(measured_at=measured_at, value=body.value, edited_by=signed_by(caller, body.edited_by),
                          reason_code=body.reason_code, comment=body.comment)
    try:
        published = await edits.edit_reading(runtime, tenant, meter_id, request, runtime.settings.zone_of)
    except edits.UnknownMeter:
        raise HTTPException(404, detail=f"meter {meter_id} is not in the registry") from None
    except edits.EditRefused as exc:
        raise HTTPException(422, detail={"reason": str(exc), "checks": list(exc.checks)}) from None
    return {"published_events": published}


@router.get("/meters/{meter_id}/edits", response_model=list[EditView])
async def meter_edits(meter_id: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """The edit log: who changed which slot, when and why, oldest first."""
    return [e.model_dump() for e in await edits.edit_log(runtime, tenant, meter_id, runtime.settings.zone_of)]


class GroupKind(StrEnum):
    """The registry's meter groups."""

    BUILDING = "building"
    CUSTOMER_TYPE = "customer_type"
    DISTRICT = "district_metered_area"


class GroupBucketView(ConsumptionBucketView):
    """A group's consumption in one local period, and how many of its meters had data / were complete /
    only actuals; complete and all_actual hold for every member with data."""

    meters: int
    actual_meters: int
    complete_meters: int


@router.get("/groups/{kind}/{group_id}/consumption", response_model=list[GroupBucketView],
            responses={422: {"description": "The group's meters measure in different units and no utility was named"}})
async def group_consumption(kind: GroupKind, group_id: str, runtime: RuntimeDep, tenant: Tenant, since: From = None,
                            until: To = None, granularity: Granularity = Granularity.DAY,
                            utility: Annotated[Utility | None, Query(description="only this utility's meters; "
                                                                      "needed when the group mixes units")] = None,
                            ) -> Any:
    """The summed consumption of a building, customer type or district metered area, per local period."""
    async with runtime.sessions() as session:
        in_group = await registry_db.meters_in_group(session, tenant, kind.value, group_id)
        if utility is not None:
            in_group = [m for m in in_group if m.utility == utility]
        units = sorted({(m.utility.value, m.unit.value) for m in in_group})
        if len({unit for _, unit in units}) > 1:
            # m³ of water and kWh of electricity do not add up: say so instead of a meaningless sum.
            mixed = ", ".join(f"{u} in {unit}" for u, unit in units)
            raise HTTPException(422, detail={"problem": "mixed_units",
                                             "reason": f"the group's meters measure {mixed}; name a utility"})
        members = [m.meter_id for m in in_group]
        known = await registry_db.swap_neighbourhood(session, tenant, members)
        series = sorted({registry_db.series_in(known, m) for m in members})
        rows = await series_db.group_buckets(session, tenant, series, granularity.value, since, until)
    return [{**r, **_coverage(r["start"], r["end"], r["covered_s"], r["estimated_s"],
                              r["complete_meters"] == r["meters"], r["actual_meters"] == r["meters"], r["meters"])}
            for r in rows]
