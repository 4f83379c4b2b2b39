"""Ingest's HTTP API for integrators and other head-ends."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_schemas.events.readings import ReadingReceived, RegisterValue
from amiflow_schemas.primitives import ReadingSource, Utility
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ingest.app import submit_reading
from ingest.config import IngestSettings
from ingest.core.readings import Outcome, ReadingRefused


class ReadingSubmission(BaseModel):
    """A meter reading as an integrator sends it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "meter_id": "WM-0001", "utility": "water", "measured_at": "2026-11-21T08:00:00+08:00",
        "registers": [{"register": "total", "value": "123.456", "unit": "m3"}],
    }]})

    meter_id: str
    utility: Utility
    measured_at: AwareDatetime
    registers: list[RegisterValue] = Field(min_length=1, max_length=64)
    gateway_id: str | None = None


class ReadingReceipt(BaseModel):
    """What ingest did with a submission."""

    event_id: UUID
    status: Outcome


def _settings(request: Request) -> IngestSettings:
    settings: IngestSettings = request.app.state.settings
    return settings


Settings = Annotated[IngestSettings, Depends(_settings)]

router = APIRouter(prefix="/v1", tags=["readings"])


@router.post("/readings", status_code=status.HTTP_202_ACCEPTED, response_model=ReadingReceipt,
             responses={200: {"description": "The same reading was accepted before"},
                        409: {"description": "Another reading with different values exists for that instant"},
                        422: {"description": "The reading is not valid; the body says why"}})
async def post_reading(submission: ReadingSubmission, runtime: RuntimeDep, settings: Settings,
                       tenant: Tenant) -> Any:
    """Accept one reading; it is durable when this answers 202 and reaches Kafka as ReadingReceived."""
    try:
        reading = ReadingReceived(**submission.model_dump(), source=ReadingSource.HTTP)
    except ValidationError as exc:
        raise HTTPException(422, detail=[{"reason": e["msg"], "location": ".".join(map(str, e["loc"]))}
                                         for e in exc.errors()]) from None
    try:
        receipt = await submit_reading(runtime, tenant, reading, timedelta(seconds=settings.max_future_skew_s))
    except ReadingRefused as exc:
        raise HTTPException(422, detail=str(exc)) from None
    body = {"event_id": str(receipt.event_id), "status": receipt.outcome.value}
    if receipt.outcome is Outcome.CONFLICT:
        body["reason"] = (f"meter {reading.meter_id} already has a different reading at "
                          f"{reading.measured_at.isoformat()}; correct it through VEE editing")
        return JSONResponse(body, status_code=409)
    return JSONResponse(body, status_code=202 if receipt.outcome is Outcome.ACCEPTED else 200)
