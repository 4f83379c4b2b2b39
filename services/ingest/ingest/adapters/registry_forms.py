"""What operators send about devices, over HTTP as JSON and in CSV rows: request models and their details.

Only types and operator notation are checked here (a schedule written ``daily 01:00 jitter 30m``,
a DI order ``901F``, an address with spaces); what a valid address or profile is, and every rule
between devices, the core checks, so JSON and CSV get the same answers.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from amiflow_schemas.events.registry import DiByteOrder, GatewayKind, MaintenanceState, ScheduleKind
from amiflow_schemas.primitives import ExactDecimal, Unit, Utility
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, NonNegativeInt

from ingest.core.registry import (
    GatewayDetails,
    Location,
    MeterDetails,
    MeterGroups,
    ReadSchedule,
    SimCardDetails,
)
from ingest.core.registry_meters import MeterSwap
from ingest.core.registry_text import nameplate_address, parse_di_order, parse_read_schedule, time_of_day


def _di_order(value: Any) -> Any:
    return parse_di_order(value) if isinstance(value, str) else value


def _address(value: Any) -> Any:
    return nameplate_address(value) if isinstance(value, str) else value


def _time_of_day(value: str | None) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"\d{1,2}:\d{2}", value):
        raise ValueError(f"{value!r} is not a time of day HH:MM")
    return time_of_day(value).strftime("%H:%M")


def _schedule(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    schedule = parse_read_schedule(value)
    return {"kind": schedule.kind, "at_local": schedule.at.strftime("%H:%M") if schedule.at else None,
            "jitter_s": schedule.jitter_s}


DiOrderText = Annotated[DiByteOrder, BeforeValidator(_di_order)]
AddressText = Annotated[str, BeforeValidator(_address)]


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocationForm(_Form):
    latitude: ExactDecimal
    longitude: ExactDecimal


class GroupsForm(_Form):
    building: str | None = None
    customer_type: str | None = None
    district_metered_area: str | None = None


class ScheduleForm(_Form):
    """A read schedule; also accepted as text, ``daily 01:00 jitter 30m``, ``hourly`` or ``push``."""

    kind: ScheduleKind
    at_local: Annotated[str | None, AfterValidator(_time_of_day)] = Field(default=None, examples=["01:00"])
    jitter_s: NonNegativeInt = 0

    def to_schedule(self) -> ReadSchedule:
        return ReadSchedule(self.kind, time_of_day(self.at_local) if self.at_local else None, self.jitter_s)


class MeterForm(_Form):
    """A meter's details as an operator states them."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "utility": "water", "profile": "cjt188-water-2004", "bus_address": "00000012345678", "unit": "m3",
        "multiplier": "1", "dial_count": 8, "gateway_id": "DTU-0001", "channel": "1",
        "schedule": "daily 01:00 jitter 30m"}]})

    utility: Utility
    profile: str
    bus_address: AddressText
    unit: Unit
    multiplier: ExactDecimal = Decimal(1)
    dial_count: int | None = None
    installation_date: date | None = None
    installation_reading: ExactDecimal | None = None
    premise: str | None = None
    room: str | None = None
    location: LocationForm | None = None
    groups: GroupsForm = GroupsForm()
    di_order: DiOrderText | None = None
    schedule: Annotated[ScheduleForm | None, BeforeValidator(_schedule)] = None
    gateway_id: str | None = None
    channel: str | None = None

    def to_details(self) -> MeterDetails:
        fields = self.model_dump(exclude={"meter_id", "location", "groups", "schedule"})
        location = Location(self.location.latitude, self.location.longitude) if self.location else None
        return MeterDetails(**fields, location=location, groups=MeterGroups(**self.groups.model_dump()),
                            schedule=self.schedule.to_schedule() if self.schedule else None)


class NewMeterForm(MeterForm):
    meter_id: str


class RemovalForm(_Form):
    removed_at: AwareDatetime | None = None  # None: now
    removal_reading: ExactDecimal | None = None


class ReplacementForm(_Form):
    """A meter exchange as the field crew reports it; unset fields of the new meter copy the old one's."""

    new_meter_id: str
    new_bus_address: AddressText
    removed_at: AwareDatetime
    removal_reading: ExactDecimal
    installed_at: AwareDatetime
    installation_reading: ExactDecimal
    profile: str | None = None
    multiplier: ExactDecimal | None = None
    dial_count: int | None = None
    di_order: DiOrderText | None = None

    def to_swap(self) -> MeterSwap:
        return MeterSwap(**self.model_dump())


class GatewayForm(_Form):
    """A DTU, concentrator or collector as an operator states it."""

    kind: GatewayKind
    registration_id: str | None = None
    model: str | None = None
    firmware: str | None = None
    parent_gateway_id: str | None = None
    channel: str | None = None
    maintenance: MaintenanceState = MaintenanceState.IN_SERVICE

    def to_details(self) -> GatewayDetails:
        return GatewayDetails(**self.model_dump(exclude={"gateway_id"}))


class NewGatewayForm(GatewayForm):
    gateway_id: str


class SimCardForm(_Form):
    """A SIM card as an operator states it; ``gateway_id`` binds it to a DTU or concentrator."""

    imsi: str | None = None
    msisdn: str | None = None
    carrier: str | None = None
    data_plan: str | None = None
    quota_bytes: NonNegativeInt | None = None
    used_bytes: NonNegativeInt | None = None
    expires_on: date | None = None
    gateway_id: str | None = None

    def to_details(self) -> SimCardDetails:
        return SimCardDetails(**self.model_dump(exclude={"iccid"}))


class NewSimCardForm(SimCardForm):
    iccid: AddressText  # as printed on the card, spaces dropped


class BindingForm(_Form):
    gateway_id: str | None  # None takes the card out of its gateway
