"""The device registry: meters, gateways (DTUs, concentrators, collectors) and SIM cards.

Registry events travel on a compacted topic, where Kafka keeps only the last record per key. So
every event carries the device's whole current state with a revision, and a fact such as a meter
replacement carries the replaced meter's final state as well: a consumer that reads the topic
from the start, after compaction, still learns the state of every device.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import AwareDatetime, Field, NonNegativeInt, PositiveInt, StringConstraints, model_validator

from amiflow_schemas.payload import EventPayload, PayloadPart
from amiflow_schemas.primitives import (
    ExactDecimal,
    Identifier,
    NonNegativeDecimal,
    PositiveDecimal,
    Unit,
    Utility,
    check_unit,
)

DeviceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
"""A meter or gateway id or an ICCID: 1-64 letters, digits, ``.``, ``_``, ``:`` or ``-`` (URL- and label-safe)."""

DeviceKey = Identifier
"""The registry topic's key, ``<tenant>/<kind>/<device id>``: one key per device and tenant."""

ProfileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
"""A protocol and model profile defined by ingest's codecs, e.g. ``cjt188-water-2004``."""

BusAddress = Annotated[str, StringConstraints(pattern=r"^[0-9A-F]{1,32}$")]
"""A meter's bus address as printed on its nameplate (hex digits, upper case, no spaces)."""

Channel = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,31}$")]
"""The bus or port of a gateway a device hangs on, e.g. ``1`` or ``RS485-2``."""

Label = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""A short human-readable name on one line: a premise, a model, a carrier, a group."""

LocalTimeOfDay = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
"""A wall-clock time ``HH:MM`` in the tenant's time zone."""

Iccid = Annotated[str, StringConstraints(pattern=r"^89[0-9A-F]{16,20}$")]
"""A SIM card's ICCID (ITU-T E.118, starts 89); Chinese operators' ICCIDs may contain letters."""

Imsi = Annotated[str, StringConstraints(pattern=r"^[0-9]{6,15}$")]
Msisdn = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{3,20}$")]
Latitude = Annotated[ExactDecimal, Field(ge=-90, le=90)]
Longitude = Annotated[ExactDecimal, Field(ge=-180, le=180)]
DialCount = Annotated[int, Field(ge=1, le=16)]
JitterSeconds = Annotated[int, Field(ge=0, le=86_400)]


class DeviceKind(StrEnum):
    """What a registry key names; the middle part of ``<tenant>/<kind>/<id>``."""

    METER = "meter"
    GATEWAY = "gateway"
    SIM_CARD = "sim-card"


def registry_key(tenant_id: str, kind: DeviceKind, device_id: str) -> str:
    """The key of one device on the registry topic (tenants may reuse each other's device ids)."""
    return f"{tenant_id}/{kind.value}/{device_id}"


def _check_key(device_key: str, kind: DeviceKind, device_id: str) -> None:
    if not device_key.endswith(f"/{kind.value}/{device_id}") or device_key.startswith("/"):
        raise ValueError(f"device_key {device_key!r} is not <tenant>/{kind.value}/{device_id}")


class RegistryChange(StrEnum):
    """What happened to a device in the change a snapshot event reports."""

    REGISTERED = "registered"
    UPDATED = "updated"
    REMOVED = "removed"


class MeterStatus(StrEnum):
    """A meter's place in its life: read and billed, or taken off the network."""

    ACTIVE = "active"
    REMOVED = "removed"


class DiByteOrder(StrEnum):
    """The CJ/T 188 data-identifier byte order a meter expects on send (protocols.md §5 #1)."""

    DI_90_1F = "90 1F"  # CJ/T 188-2004 meters
    DI_1F_90 = "1F 90"  # CJ/T 188-2018 and SC-style meters


class ScheduleKind(StrEnum):
    """How the head-end reads a meter: polled daily, polled hourly, or the meter pushes."""

    DAILY = "daily"
    HOURLY = "hourly"
    PUSH = "push"


class ReadSchedule(PayloadPart):
    """When the read scheduler polls a meter; jitter spreads a market's polls over a window."""

    kind: ScheduleKind
    at_local: LocalTimeOfDay | None  # daily polls only: the tenant's wall-clock time
    jitter_s: JitterSeconds

    @model_validator(mode="after")
    def _fits_kind(self) -> Self:
        if (self.kind is ScheduleKind.DAILY) != (self.at_local is not None):
            raise ValueError("at_local is given exactly for daily schedules")
        if self.kind is ScheduleKind.PUSH and self.jitter_s:
            raise ValueError("a push meter is not polled, so it has no jitter")
        return self


class GeoLocation(PayloadPart):
    """WGS 84 coordinates in decimal degrees."""

    latitude: Latitude
    longitude: Longitude


class MeterGroups(PayloadPart):
    """The groups reports and balances aggregate a meter into."""

    building: Label | None
    customer_type: Label | None
    district_metered_area: Label | None  # the DMA whose inflow the water balance compares


class MeterRemoval(PayloadPart):
    """When a meter came off the network, its last register value and its successor if any."""

    removed_at: AwareDatetime
    removal_reading: NonNegativeDecimal | None
    replaced_by_meter_id: DeviceId | None


class MeterState(PayloadPart):
    """Everything the registry knows of one meter."""

    meter_id: DeviceId
    utility: Utility
    profile: ProfileName
    bus_address: BusAddress
    multiplier: PositiveDecimal  # CT x PT ratio, or the volume per pulse
    dial_count: DialCount | None  # register digits; VEE's rollover modulus is 10^dial_count
    unit: Unit
    installation_date: date | None
    installation_reading: NonNegativeDecimal | None
    installed_at: AwareDatetime | None  # the instant of installation_reading, when it was taken
    premise: Label | None
    room: Label | None
    location: GeoLocation | None
    groups: MeterGroups
    di_order: DiByteOrder | None  # None: the profile's default
    schedule: ReadSchedule | None  # None: the meter is not polled
    gateway_id: DeviceId | None  # the DTU, concentrator or collector it hangs on
    channel: Channel | None  # the bus or port of that gateway
    status: MeterStatus
    replaces_meter_id: DeviceId | None
    removal: MeterRemoval | None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_unit(self.utility, self.unit)
        if (self.status is MeterStatus.REMOVED) != (self.removal is not None):
            raise ValueError("removal is given exactly when the status is removed")
        if self.channel is not None and self.gateway_id is None:
            raise ValueError("a channel needs a gateway_id")
        return self


class MeterDefined(EventPayload):
    """A meter's full state after it was registered, changed or removed."""

    EVENT_TYPE: ClassVar[str] = "MeterDefined"
    EVENT_VERSION: ClassVar[int] = 1

    device_key: DeviceKey
    revision: PositiveInt  # 1 at registration, +1 per change; a consumer keeps the highest
    change: RegistryChange
    meter: MeterState

    @model_validator(mode="after")
    def _keyed_by_meter(self) -> Self:
        _check_key(self.device_key, DeviceKind.METER, self.meter.meter_id)
        return self


class MeterReplacement(PayloadPart):
    """Both ends of a meter swap: what VEE needs to carry consumption across it (vee.md §4)."""

    new_meter_id: DeviceId
    removed_at: AwareDatetime
    removal_reading: NonNegativeDecimal
    installed_at: AwareDatetime
    installation_reading: NonNegativeDecimal


class MeterReplaced(EventPayload):
    """A meter was swapped for a new one; carries the old meter's final (removed) state."""

    EVENT_TYPE: ClassVar[str] = "MeterReplaced"
    EVENT_VERSION: ClassVar[int] = 1

    device_key: DeviceKey  # the old meter's key: this may be its last record
    revision: PositiveInt
    meter: MeterState
    replacement: MeterReplacement

    @model_validator(mode="after")
    def _final_state_matches(self) -> Self:
        _check_key(self.device_key, DeviceKind.METER, self.meter.meter_id)
        removal, swap = self.meter.removal, self.replacement
        if removal is None or (removal.removed_at, removal.removal_reading, removal.replaced_by_meter_id) != (
                swap.removed_at, swap.removal_reading, swap.new_meter_id):
            raise ValueError("the meter's removal must be the replacement's removal")
        if swap.installed_at < swap.removed_at:
            raise ValueError("the new meter cannot be installed before the old one was removed")
        return self


class GatewayKind(StrEnum):
    """What sits between meters and the head-end."""

    DTU = "dtu"  # a modem that tunnels a serial bus over TCP
    CONCENTRATOR = "concentrator"  # reads its meters itself and talks 376.1 / 698.45 or vendor protocols
    COLLECTOR = "collector"  # a bus master behind a DTU or concentrator; never connects by itself


class MaintenanceState(StrEnum):
    """Whether a gateway is expected to be online."""

    IN_SERVICE = "in_service"
    MAINTENANCE = "maintenance"  # offline on purpose: no alarms for missing reads
    RETIRED = "retired"


class GatewayState(PayloadPart):
    """Everything the registry knows of one gateway."""

    gateway_id: DeviceId
    kind: GatewayKind
    registration_id: Identifier | None  # what the device sends in its registration packet
    model: Label | None
    firmware: Label | None
    parent_gateway_id: DeviceId | None  # a collector's DTU or concentrator
    channel: Channel | None  # the parent's bus or port the collector hangs on
    maintenance: MaintenanceState

    @model_validator(mode="after")
    def _channel_needs_parent(self) -> Self:
        if self.channel is not None and self.parent_gateway_id is None:
            raise ValueError("a channel needs a parent_gateway_id")
        return self


class GatewayDefined(EventPayload):
    """A gateway's full state after it was registered or changed."""

    EVENT_TYPE: ClassVar[str] = "GatewayDefined"
    EVENT_VERSION: ClassVar[int] = 1

    device_key: DeviceKey
    revision: PositiveInt
    change: RegistryChange
    gateway: GatewayState

    @model_validator(mode="after")
    def _keyed_by_gateway(self) -> Self:
        _check_key(self.device_key, DeviceKind.GATEWAY, self.gateway.gateway_id)
        return self


class SimCardAspect(StrEnum):
    """A part of a SIM card's record that a change touched."""

    CARD = "card"  # the gateway it is bound to: a card swap touches the old and the new card
    NUMBER = "number"  # MSISDN or IMSI
    PLAN = "plan"  # carrier, data plan, quota or expiry
    USAGE = "usage"


class SimCardState(PayloadPart):
    """Everything the registry knows of one SIM card."""

    iccid: Iccid
    imsi: Imsi | None
    msisdn: Msisdn | None
    carrier: Label | None
    data_plan: Label | None
    quota_bytes: NonNegativeInt | None  # per billing period of the plan
    used_bytes: NonNegativeInt | None
    expires_on: date | None
    gateway_id: DeviceId | None


class SimCardDefined(EventPayload):
    """A SIM card's full state after it was registered, bound, re-numbered or re-planned."""

    EVENT_TYPE: ClassVar[str] = "SimCardDefined"
    EVENT_VERSION: ClassVar[int] = 1

    device_key: DeviceKey
    revision: PositiveInt
    change: RegistryChange
    changed: Annotated[tuple[SimCardAspect, ...], Field(max_length=len(SimCardAspect))]  # empty at registration
    sim_card: SimCardState

    @model_validator(mode="after")
    def _keyed_by_card(self) -> Self:
        _check_key(self.device_key, DeviceKind.SIM_CARD, self.sim_card.iccid)
        return self
