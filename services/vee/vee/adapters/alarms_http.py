"""Alarms for operators: list, look at one, acknowledge (an acknowledgement is itself an event)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from amiflow_runtime.http import Caller, RuntimeDep, Tenant, out_of_reach, signed_by
from amiflow_runtime.outbox import stage
from amiflow_schemas import new_envelope
from amiflow_schemas.events.alarms import AlarmAcknowledged, AlarmSubject, AlarmType
from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, Field

from vee.adapters import alarms_db, db
from vee.adapters.reach import meter_in_reach


class AlarmView(BaseModel):
    """One alarm episode."""

    alarm_id: UUID
    alarm_type: str
    severity: str
    subject: str
    subject_id: str
    utility: str
    rule_id: str
    detected_at: datetime
    observed_value: Decimal | None
    threshold_value: Decimal | None
    value_unit: str | None
    description: str
    state: str
    cleared_at: datetime | None
    clear_reason: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_note: str | None


class Acknowledgement(BaseModel):
    """Who takes note of the alarm, and what they say (the operator comes from the token once auth exists)."""

    acknowledged_by: str = Field(min_length=1, max_length=128)
    note: str | None = Field(default=None, max_length=2000)


router = APIRouter(prefix="/v1", tags=["alarms"])


@router.get("/alarms", response_model=list[AlarmView])
async def list_alarms(runtime: RuntimeDep, tenant: Tenant,
                      state: Annotated[str | None, Query(pattern="^(open|cleared)$")] = None,
                      alarm_type: AlarmType | None = None, subject_id: str | None = None,
                      since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
                      until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Alarms newest first, filtered by state, type, subject and detection time [from, to)."""
    async with runtime.sessions() as session:
        return await alarms_db.search(session, tenant, state=state, subject_id=subject_id, since=since,
                                      until=until, limit=limit,
                                      alarm_type=alarm_type.value if alarm_type else None)


@router.get("/alarms/{alarm_id}", response_model=AlarmView, responses={404: {"description": "No such alarm"}})
async def get_alarm(alarm_id: UUID, runtime: RuntimeDep, tenant: Tenant) -> Any:
    async with runtime.sessions() as session:
        found = await alarms_db.alarm(session, tenant, alarm_id)
    if found is None:
        raise HTTPException(404, detail=f"no alarm {alarm_id}")
    return found


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmView, responses={404: {"description": "No such alarm"}})
async def acknowledge(alarm_id: UUID, body: Acknowledgement, runtime: RuntimeDep, tenant: Tenant,
                      caller: Caller) -> Any:
    """Acknowledge an alarm once; acknowledging it again changes nothing and publishes nothing."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        found = await alarms_db.alarm(session, tenant, alarm_id)
        if found is None:
            raise HTTPException(404, detail=f"no alarm {alarm_id}")
        if found["subject"] == AlarmSubject.METER.value:
            await meter_in_reach(session, tenant, caller, found["subject_id"])
        elif caller.duties is not None and "water" not in caller.duties:
            # A district metered area is water's and spans buildings: the water duty is what it takes.
            raise out_of_reach(f"district {found['subject_id']} (district alarms need the water duty)")
        if found["acknowledged_at"] is None:
            ack = AlarmAcknowledged(alarm_id=alarm_id, alarm_type=AlarmType(found["alarm_type"]),
                                    subject=AlarmSubject(found["subject"]), subject_id=found["subject_id"],
                                    acknowledged_at=now, acknowledged_by=signed_by(caller, body.acknowledged_by),
                                    note=body.note)
            await alarms_db.acknowledged(session, tenant, ack)
            event = new_envelope(ack, event_id=uuid.uuid4(), tenant_id=tenant, key=ack.subject_id, occurred_at=now,
                                 recorded_at=now, producer="vee")
            await stage(session, db.outbox, [event], now)
            found = await alarms_db.alarm(session, tenant, alarm_id)
    return found
