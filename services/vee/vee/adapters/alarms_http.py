"""Alarms for operators: list, look at one, acknowledge (an acknowledgement is itself an event)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from amiflow_runtime.http import Caller, RuntimeDep, Tenant, out_of_reach, signed_by
from amiflow_runtime.outbox import stage
from amiflow_schemas import new_envelope
from amiflow_schemas.events.alarms import AlarmAcknowledged, AlarmSeverity, AlarmSubject, AlarmType
from amiflow_schemas.primitives import Identifier, Text
from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, field_validator

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
    """Who takes note of the alarm (the caller when not given), and what they say."""

    # The event's own types (AlarmAcknowledged), so what passes here can be published.
    acknowledged_by: Identifier | None = None
    note: Text | None = None

    @field_validator("note", mode="before")
    @classmethod
    def _blank_is_none(cls, note: Any) -> Any:
        # A form's empty note field is no note.
        return None if isinstance(note, str) and not note.strip() else note


class AlarmListState(StrEnum):
    """An alarm's state as the alarms page filters it: acknowledged and unacknowledged are open ones."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    CLEARED = "cleared"


router = APIRouter(prefix="/v1", tags=["alarms"])


@router.get("/alarms", response_model=list[AlarmView])
async def list_alarms(runtime: RuntimeDep, tenant: Tenant, state: AlarmListState | None = None,
                      alarm_type: Annotated[list[AlarmType] | None, Query()] = None,
                      severity: Annotated[list[AlarmSeverity] | None, Query()] = None,
                      subject: AlarmSubject | None = None, subject_id: str | None = None,
                      meter_id: str | None = None,
                      since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
                      until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
                      after: UUID | None = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Alarms newest first, filtered by state, types, severities, subject and detection time [from, to);
    the next page starts `after` the last alarm of this one (a short page is the last)."""
    where = alarms_db.AlarmFilter(
        state=state.value if state else None, alarm_types=[t.value for t in alarm_type or ()],
        severities=[s.value for s in severity or ()], subject=subject.value if subject else None,
        subject_id=subject_id, meter_id=meter_id, since=since, until=until)
    async with runtime.sessions() as session:
        cursor = None
        if after is not None:
            cursor = await alarms_db.alarm(session, tenant, after)
            if cursor is None:
                raise HTTPException(422, detail={"problem": "unknown_cursor",
                                                 "reason": f"no alarm {after} to page after"})
        return await alarms_db.listing(session, tenant, where, after=cursor, limit=limit)


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
                                    acknowledged_at=now,
                                    acknowledged_by=signed_by(caller, body.acknowledged_by or caller.subject),
                                    note=body.note)
            await alarms_db.acknowledged(session, tenant, ack)
            event = new_envelope(ack, event_id=uuid.uuid4(), tenant_id=tenant, key=ack.subject_id, occurred_at=now,
                                 recorded_at=now, producer="vee")
            await stage(session, db.outbox, [event], now)
            found = await alarms_db.alarm(session, tenant, alarm_id)
    return found
