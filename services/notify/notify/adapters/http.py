"""Notify's read API (delivery log, subscriptions and preferences arrive with the notifications issue)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from amiflow_runtime.http import RuntimeDep, Tenant
from fastapi import APIRouter, Query
from pydantic import BaseModel

from notify.adapters import db


class TriggerView(BaseModel):
    """An event notify recorded as calling for a notification."""

    event_id: UUID
    event_type: str
    audience: str
    subject_id: str
    occurred_at: datetime
    recorded_at: datetime


router = APIRouter(prefix="/v1", tags=["notifications"])


@router.get("/triggers", response_model=list[TriggerView])
async def triggers(runtime: RuntimeDep, tenant: Tenant, subject_id: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, object]]:
    """The newest notification triggers, optionally for one account, meter or device."""
    async with runtime.sessions() as session:
        return await db.recent(session, tenant, subject_id, limit)
