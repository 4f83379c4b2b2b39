"""VEE's read API: validated readings per meter."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_schemas.events.readings import RegisterValue
from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from vee.adapters import db


class ValidatedReadingView(BaseModel):
    """One reading after validation, as operators and integrators see it."""

    event_id: UUID
    meter_id: str
    measured_at: datetime
    status: str
    consumption: Decimal | None
    consumption_unit: str | None
    failure: str | None
    registers: list[RegisterValue]
    source_event_id: UUID
    recorded_at: datetime


router = APIRouter(prefix="/v1", tags=["readings"])


@router.get("/meters/{meter_id}/readings", response_model=list[ValidatedReadingView])
async def meter_readings(
    meter_id: str, runtime: RuntimeDep, tenant: Tenant,
    since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, object]]:
    """A meter's validated readings, newest first, in [from, to)."""
    async with runtime.sessions() as session:
        return await db.readings_of(session, tenant, meter_id, since, until, limit)
