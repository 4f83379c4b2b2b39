"""From a decoded frame to what the gateway publishes: register values, meter time, device status."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from amiflow_schemas.events.devices import BatteryLevel, BatteryStatus, RejectionReason
from amiflow_schemas.primitives import Unit

from ingest.core.protocols.errors import FrameError
from ingest.core.protocols.model import DecodedFrame, Direction
from ingest.core.protocols.profile import MeterProfile


class RegisterReading(NamedTuple):
    """One billing register in platform units, ready for a ReadingReceived."""

    register: str
    value: Decimal
    unit: Unit


def register_values(frame: DecodedFrame, multiplier: Decimal = Decimal(1)) -> list[RegisterReading]:
    """The frame's registers (total, T1..T4, reverse, volume …) times ``multiplier`` (e.g. a CT ratio).

    Requests and abnormal replies carry none; a register the meter marked unsupported (all FF) is
    left out; a register in a unit the platform does not know is refused, never passed on unscaled.
    """
    if not isinstance(multiplier, Decimal) or not multiplier.is_finite() or multiplier <= 0:
        raise ValueError(f"the multiplier must be a positive finite Decimal, not {multiplier!r}")
    if frame.is_error or frame.direction is Direction.REQUEST:
        return []
    readings = []
    for measurement in frame.values:
        if measurement.register is None or measurement.value is None:
            continue
        unit = measurement.base_unit
        if unit is None:
            raise FrameError(
                RejectionReason.INVALID_VALUE,
                f"register {measurement.register} is in {measurement.unit!r}, not a platform unit "
                f"({', '.join(u.value for u in Unit)}); map the unit code in the meter's profile",
                protocol=frame.protocol, address=frame.address,
            )
        readings.append(RegisterReading(measurement.register, measurement.value * multiplier, unit))
    return readings


def meter_time(frame: DecodedFrame, tz: ZoneInfo) -> datetime | None:
    """The meter's clock as an aware datetime in its zone (the protocols send local wall time)."""
    return None if frame.meter_clock is None else frame.meter_clock.aware(tz)


def device_status(frame: DecodedFrame, tz: ZoneInfo, profile: MeterProfile | None = None) -> dict[str, Any] | None:
    """The DeviceStatusReported (v2) fields a frame supports, or None when it carries no status.

    Keys: utility, reported_at (None: use the receive time), valve, relay, battery, alarms,
    status_word_hex. The gateway adds meter_id and gateway_id.
    """
    status = frame.status
    if status is None or frame.direction is Direction.REQUEST:
        return None
    has_valve = profile is None or profile.cjt188 is None or profile.cjt188.valve is not None
    battery = None
    if status.battery_low is not None:
        level = BatteryLevel.LOW if status.battery_low else BatteryLevel.OK
        battery = BatteryStatus(level=level, voltage_v=None, remaining_percent=None)
    return {
        "utility": frame.utility,
        "reported_at": meter_time(frame, tz),
        "valve": status.valve if has_valve else None,
        "relay": status.relay,
        "battery": battery,
        "alarms": status.alarms,
        "status_word_hex": status.raw_hex or None,
    }
