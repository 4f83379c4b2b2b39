"""What VEE needs to know about a metering point: its devices over time, calendar and groups.

A metering point's series may run over several devices: a replaced meter closes with its removal
read and the new one opens with its installation read, and consumption is never a difference
between two devices' registers (vee.md §4). ``devices`` lists them in installation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Self
from zoneinfo import ZoneInfo

from amiflow_schemas.events.registry import MeterState, MeterStatus
from amiflow_schemas.primitives import (
    ExactDecimal,
    Identifier,
    NonNegativeDecimal,
    PositiveDecimal,
    TimeZoneName,
    Unit,
    Utility,
)
from pydantic import AwareDatetime, Field, model_validator

from vee.core.grid import ReadGrid, read_grid
from vee.core.rules import ObjectGroups
from vee.core.stored import Stored


class MeterDevice(Stored):
    """One physical meter's part of the series: its register geometry and when it was in place."""

    meter_id: Identifier
    multiplier: PositiveDecimal  # register constant x CT x VT, or volume per pulse [IEE-REG]
    dial_count: Annotated[int, Field(ge=1, le=16)] | None = None
    resolution: PositiveDecimal = Decimal(1)  # the register's last digit; modulus = 10^dials x resolution
    installed_at: AwareDatetime | None = None
    installation_reading: NonNegativeDecimal | None = None
    removed_at: AwareDatetime | None = None
    removal_reading: NonNegativeDecimal | None = None

    @property
    def modulus(self) -> Decimal | None:
        """Where the register wraps to zero (vee.md §4 rollover), None when the dial count is unknown."""
        return None if self.dial_count is None else Decimal(10) ** self.dial_count * self.resolution

    def in_place(self, at: datetime, tolerance: timedelta) -> bool:
        """True when the device could have been read at ``at``."""
        if self.installed_at is not None and at < self.installed_at - tolerance:
            return False
        return self.removed_at is None or at <= self.removed_at + tolerance


class InactivePeriod(Stored):
    """A span in which the service is disconnected: consumption there is V10, not billed."""

    start: AwareDatetime
    end: AwareDatetime | None = None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """True when the period shares time with [start, end)."""
        return self.start < end and (self.end is None or start < self.end)


class LoadProfile(Stored):
    """A class load profile for E6: relative weights per local hour and per weekday (Monday first)."""

    name: Identifier
    hourly_weights: Annotated[tuple[NonNegativeDecimal, ...], Field(min_length=24, max_length=24)]
    daily_weights: Annotated[tuple[NonNegativeDecimal, ...], Field(min_length=7, max_length=7)]


class MeterContext(Stored):
    """Registry facts and tenant settings VEE reads a metering point's data with."""

    tenant_id: Identifier
    series_id: Identifier  # the metering point: the key of its state
    utility: Utility
    unit: Unit
    time_zone: TimeZoneName
    read_interval: timedelta  # divides a day, or is one day
    read_time: time = time(0)  # daily reads: the local wall-clock time of the read
    read_offset: timedelta = timedelta(0)  # the meter's stable poll jitter within its interval
    devices: Annotated[tuple[MeterDevice, ...], Field(min_length=1)]
    groups: ObjectGroups = ObjectGroups()
    profile: LoadProfile | None = None
    q3_m3_per_h: ExactDecimal | None = None  # permanent flow rate Q3, for burst alarms
    inactive: tuple[InactivePeriod, ...] = ()
    continuous_flow_expected: bool = False  # a site tag that silences leak alarms [§5]
    holidays: tuple[date, ...] = ()  # estimated like Sundays [EWX-SIM]

    @model_validator(mode="after")
    def _grid_fits(self) -> Self:
        self.grid  # noqa: B018 - raises when the zone, interval or offset cannot make a grid
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The tenant's time zone."""
        return ZoneInfo(self.time_zone)

    @property
    def grid(self) -> ReadGrid:
        """The slots this meter is expected to report at."""
        return read_grid(self.read_interval, self.zone, self.read_time, self.read_offset)

    def device(self, meter_id: str) -> MeterDevice | None:
        """The device of the series with this id."""
        for device in self.devices:
            if device.meter_id == meter_id:
                return device
        return None

    def device_at(self, at: datetime) -> MeterDevice:
        """The device in place at ``at`` (the latest one installed by then)."""
        placed = [d for d in self.devices if d.installed_at is None or d.installed_at <= at]
        return placed[-1] if placed else self.devices[0]

    def inactive_between(self, start: datetime, end: datetime) -> bool:
        """True when the service was disconnected during part of [start, end)."""
        return bool(self.inactive) and any(p.overlaps(start, end) for p in self.inactive)

    def day_kind(self, day: date) -> int:
        """The weekday like days are matched on; a holiday counts as a Sunday."""
        return 6 if day in self.holidays else day.weekday()


def device_from_registry(meter: MeterState) -> MeterDevice:
    """A device of the series from the registry's state of a meter."""
    removal = meter.removal
    return MeterDevice(
        meter_id=meter.meter_id, multiplier=meter.multiplier, dial_count=meter.dial_count,
        installed_at=meter.installed_at, installation_reading=meter.installation_reading,
        removed_at=removal.removed_at if removal else None,
        removal_reading=removal.removal_reading if removal else None)


def context_from_registry(meter: MeterState, *, tenant_id: str, time_zone: str, read_interval: timedelta,
                          predecessors: Sequence[MeterState] = (),
                          read_offset: timedelta = timedelta(0)) -> MeterContext:
    """The context of the metering point whose current meter is ``meter`` (older ones first).

    ``read_offset`` is the meter's stable poll offset within its interval, as the head-end derives
    it from the meter id and the schedule's jitter; a daily schedule's local time becomes the read time.
    """
    chain = (*predecessors, meter)
    inactive = (InactivePeriod(start=meter.removal.removed_at),) if (
        meter.status is MeterStatus.REMOVED and meter.removal is not None
        and meter.removal.replaced_by_meter_id is None) else ()
    at_local = meter.schedule.at_local if meter.schedule and meter.schedule.at_local else "00:00"
    return MeterContext(
        tenant_id=tenant_id, series_id=chain[0].meter_id, utility=meter.utility, unit=meter.unit,
        time_zone=time_zone, read_interval=read_interval, read_time=time.fromisoformat(at_local),
        read_offset=read_offset, devices=tuple(device_from_registry(m) for m in chain),
        groups=ObjectGroups(customer_type=meter.groups.customer_type, meter_model=meter.profile,
                            district=meter.groups.district_metered_area),
        inactive=inactive)
