"""Operators' edits of a meter's readings: a new version with who, when and why, validated again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from amiflow_runtime.outbox import stage
from amiflow_runtime.service import ServiceRuntime

from vee.adapters import db, rules_db, series_db
from vee.core import engine
from vee.core.model import ManualEdit
from vee.series_app import Cause, Zones, publish_outcome, series_of_meter


class EditRefused(ValueError):
    """The edit failed validation against its neighbours (or hit a settled period): nothing was saved."""

    def __init__(self, checks: tuple[str, ...]) -> None:
        super().__init__(f"the edited value fails validation: {', '.join(checks)}")
        self.checks = checks


class UnknownMeter(LookupError):
    """No such meter in this tenant's registry (as VEE knows it)."""


@dataclass(frozen=True)
class EditRequest:
    """What the operator asks for: a new register value at a slot, or its deletion (value None)."""

    measured_at: datetime
    value: Decimal | None
    edited_by: str
    reason_code: str
    comment: str | None


async def edit_reading(runtime: ServiceRuntime, tenant_id: str, meter_id: str, request: EditRequest,
                       zones: Zones) -> int:
    """Apply the edit as a new version and publish what it changes; returns the number of events."""
    now = runtime.clock.now()
    edit = ManualEdit(edit_id=uuid.uuid4(), measured_at=request.measured_at, value=request.value,
                      edited_by=request.edited_by, edited_at=now, reason_code=request.reason_code,
                      comment=request.comment)
    async with runtime.sessions() as session, session.begin():
        found = await series_of_meter(session, tenant_id, meter_id, zones)
        if found is None:
            raise UnknownMeter(meter_id)
        context, state, existed = found
        outcome = engine.apply_edit(state, context, await rules_db.rule_set(session, tenant_id), edit, now)
        if outcome.edit_rejected is not None:
            raise EditRefused(tuple(c.value for c in outcome.edit_rejected.checks))
        await series_db.save(session, tenant_id, outcome.state, existed, now, context.devices[-1].meter_id)
        events = await publish_outcome(session, Cause(tenant_id), context, outcome, now)
        await stage(session, db.outbox, events, now)
    return len(events)


async def edit_log(runtime: ServiceRuntime, tenant_id: str, meter_id: str, zones: Zones) -> list[ManualEdit]:
    """Every edit of the meter's series, oldest first (the original readings stay in the state too)."""
    async with runtime.sessions() as session, session.begin():
        found = await series_of_meter(session, tenant_id, meter_id, zones)
    return [] if found is None else list(found[1].edits)
