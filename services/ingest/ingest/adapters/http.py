"""Ingest's HTTP API for integrators and other head-ends: readings in, receipts out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from amiflow_runtime.auth import Permission, needs
from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_runtime.http_refusals import allows_body
from amiflow_runtime.metrics import HTTP_REJECTED
from amiflow_schemas.events.devices import BatteryLevel, BatteryStatus, DeviceAlarmFlag, DeviceStatusReported
from amiflow_schemas.events.readings import ReadingReceived, RegisterValue
from amiflow_schemas.primitives import ReadingSource, RelayState, Utility, ValveState
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, WrapValidator, model_validator

from ingest.adapters import registry_db
from ingest.app import Submission, submit_batch
from ingest.config import IngestSettings
from ingest.core.protocols import RegisterReading, pulse_register, pulse_total
from ingest.core.readings import Outcome, ReadingRefused, check_clock
from ingest.core.registry import Meter
from ingest.profiles import load_profile, profile_names

MAX_BATCH = 10_000
# 10,000 readings of a few registers each is about 4 MB of JSON: more than the service's body limit allows.
MAX_BATCH_BYTES = 16 * 1024 * 1024


class DeviceFlags(BaseModel):
    """Status a device reported with its reading (all optional)."""

    model_config = ConfigDict(extra="forbid")

    valve: ValveState | None = None
    relay: RelayState | None = None
    battery: BatteryLevel | None = None
    alarms: list[DeviceAlarmFlag] = Field(default_factory=list, max_length=len(DeviceAlarmFlag))


class ReadingItem(BaseModel):
    """A meter reading as an integrator sends it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "meter_id": "WM-0001", "utility": "water", "measured_at": "2026-11-21T08:00:00+08:00",
        "registers": [{"register": "total", "value": "123.456", "unit": "m3"}],
    }]})

    meter_id: str
    utility: Utility
    measured_at: AwareDatetime
    # Register values, or for a pulse counter the pulse count: the registered meter's pulse weight
    # (its pulse profile, else its multiplier) turns it into a register value.
    registers: list[RegisterValue] | None = Field(default=None, min_length=1, max_length=64)
    pulse_count: int | None = Field(default=None, ge=0)
    gateway_id: str | None = None
    status: DeviceFlags | None = None

    @model_validator(mode="after")
    def _registers_or_pulses(self) -> ReadingItem:
        if (self.registers is None) == (self.pulse_count is None):
            raise ValueError("give either registers or pulse_count")
        return self


@dataclass(frozen=True)
class InvalidItem:
    """An item that failed validation; it is answered, not raised, so the rest of the batch goes on."""

    reason: str


def _reasons(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts)


def _lenient(value: Any, handler: Any) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        return InvalidItem(_reasons(exc))


LenientItem = Annotated[ReadingItem, WrapValidator(_lenient, json_schema_input_type=ReadingItem)]


class ReadingBatch(BaseModel):
    """Up to 10,000 readings; each is accepted or rejected on its own."""

    readings: list[LenientItem] = Field(min_length=1, max_length=MAX_BATCH)


class ItemResult(BaseModel):
    """What happened to one item."""

    index: int
    status: str  # accepted | duplicate | conflict | rejected
    event_id: UUID | None = None
    reason: str | None = None


class BatchReceipt(BaseModel):
    """Counts and per-item results, in the order the items were sent."""

    accepted: int
    duplicates: int
    conflicts: int
    rejected: int
    items: list[ItemResult]


class SingleReceipt(BaseModel):
    """What a single reading (not a batch) is answered with."""

    event_id: UUID | None
    status: str  # accepted (202) | duplicate (200) | conflict (409, with the reason)
    reason: str | None = None


def _settings(request: Request) -> IngestSettings:
    settings: IngestSettings = request.app.state.settings
    return settings


Settings = Annotated[IngestSettings, Depends(_settings)]
router = APIRouter(prefix="/v1", tags=["readings"])


def _registers(item: ReadingItem, meters: dict[str, Meter]) -> tuple[RegisterValue, ...]:
    if item.registers is not None:
        return tuple(item.registers)
    meter = meters.get(item.meter_id)
    if meter is None:
        raise ReadingRefused(f"pulse_count needs a registered meter; {item.meter_id} is not in the registry")
    assert item.pulse_count is not None
    profile = load_profile(meter.details.profile) if meter.details.profile in profile_names() else None
    if profile is not None and profile.pulse is not None:
        register = pulse_register(item.pulse_count, profile.pulse)
    else:
        register = RegisterReading("total", pulse_total(item.pulse_count, meter.details.multiplier), meter.details.unit)
    return (RegisterValue(register=register.register, value=register.value, unit=register.unit),)


def to_submission(index: int, item: ReadingItem, settings: IngestSettings, now: Any,
                  meters: dict[str, Meter]) -> Submission:
    """The domain form of an item, or ReadingRefused / ValidationError with the reason."""
    reading = ReadingReceived(meter_id=item.meter_id, utility=item.utility, measured_at=item.measured_at,
                              registers=_registers(item, meters), source=ReadingSource.HTTP,
                              gateway_id=item.gateway_id)
    check_clock(reading, now, timedelta(seconds=settings.max_future_skew_s))
    status = None
    if item.status is not None:
        flags = item.status
        status = DeviceStatusReported(
            meter_id=item.meter_id, utility=item.utility, reported_at=item.measured_at, valve=flags.valve,
            relay=flags.relay, alarms=tuple(dict.fromkeys(flags.alarms)), status_word_hex=None,
            battery=BatteryStatus(level=flags.battery, voltage_v=None, remaining_percent=None)
            if flags.battery else None, gateway_id=item.gateway_id,
        )
    return Submission(index, reading, status)


# Integrators send readings; operators key in the ones read by hand.
# The 200 answer is a batch's receipt or a single reading's "duplicate": both are documented, neither enforced.
@router.post("/readings", response_model=None,
             openapi_extra={**needs(Permission.INGEST, Permission.OPERATE), **allows_body(MAX_BATCH_BYTES)},
             responses={
                 200: {"model": BatchReceipt | SingleReceipt,
                       "description": "A batch's receipt, item by item; or a single reading seen before"},
                 202: {"model": SingleReceipt, "description": "A single reading was accepted"},
                 409: {"model": SingleReceipt,
                       "description": "A single reading contradicts the one accepted for that meter and instant"},
                 422: {"description": "The request is not valid; the body says why"}})
async def post_readings(body: ReadingBatch | ReadingItem, runtime: RuntimeDep, settings: Settings,
                        tenant: Tenant) -> Any:
    """Accept readings: a batch answers per item (re-sending one is a no-op); a single object answers alone."""
    items = body.readings if isinstance(body, ReadingBatch) else [body]
    now = runtime.clock.now()
    meters = await _pulse_meters(runtime, tenant, items)
    results: dict[int, ItemResult] = {}
    valid: list[Submission] = []
    for index, item in enumerate(items):
        try:
            if isinstance(item, InvalidItem):
                raise ReadingRefused(item.reason)
            valid.append(to_submission(index, item, settings, now, meters))
        except (ReadingRefused, ValidationError, ValueError) as exc:
            reason = _reasons(exc) if isinstance(exc, ValidationError) else str(exc)
            results[index] = ItemResult(index=index, status="rejected", reason=reason)
    for verdict in await submit_batch(runtime, tenant, valid):
        results[verdict.index] = ItemResult(index=verdict.index, status=verdict.outcome.value,
                                            event_id=verdict.event_id)
    ordered = [results[i] for i in range(len(items))]
    if isinstance(body, ReadingItem):
        return _single_answer(ordered[0], body)
    HTTP_REJECTED.labels("/v1/readings", "item").inc(sum(r.status == "rejected" for r in ordered))
    return BatchReceipt(accepted=_count(ordered, "accepted"), duplicates=_count(ordered, "duplicate"),
                        conflicts=_count(ordered, "conflict"), rejected=_count(ordered, "rejected"), items=ordered)


async def _pulse_meters(runtime: Any, tenant: str, items: list[Any]) -> dict[str, Meter]:
    ids = {i.meter_id for i in items if isinstance(i, ReadingItem) and i.pulse_count is not None}
    if not ids:
        return {}
    async with runtime.sessions() as session:
        return await registry_db.meters_by_id(session, tenant, ids)


def _count(results: list[ItemResult], status: str) -> int:
    return sum(r.status == status for r in results)


def _single_answer(result: ItemResult, item: ReadingItem) -> JSONResponse:
    body: dict[str, Any] = {"event_id": str(result.event_id) if result.event_id else None, "status": result.status}
    if result.status == Outcome.CONFLICT.value:
        body["reason"] = (f"meter {item.meter_id} already has a different reading at "
                          f"{item.measured_at.isoformat()}; correct it through VEE editing")
        return JSONResponse(body, status_code=409)
    if result.status == "rejected":
        return JSONResponse({"detail": result.reason}, status_code=422)
    return JSONResponse(body, status_code=202 if result.status == Outcome.ACCEPTED.value else 200)
