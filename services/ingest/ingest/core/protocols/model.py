"""What a decoded frame says: one frozen model for every protocol the head-end reads."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from amiflow_schemas.events.commands import RelayAction, ValveAction
from amiflow_schemas.events.devices import DeviceAlarmFlag, FrameProtocol
from amiflow_schemas.primitives import RelayState, Unit, Utility, ValveState

from ingest.core.protocols.bcd import WallClock

_BASE_UNITS = {unit.value: unit for unit in Unit}


class Direction(StrEnum):
    """Who sent a frame: the master (a request, or the echo of ours) or the meter (a reply)."""

    REQUEST = "request"  # master -> meter; control bit D7 = 0
    REPLY = "reply"  # meter -> master; control bit D7 = 1


class DiOrder(StrEnum):
    """The CJ/T 188 data identifier's byte order on the wire (protocols.md §5 item 1)."""

    HIGH_FIRST = "high_first"  # "90 1F": most 2004-era implementations
    LOW_FIRST = "low_first"  # "1F 90": the 2018 edition and SC-style meters
    UNKNOWN = "unknown"  # neither order names a data identifier we know


@dataclass(frozen=True)
class Measurement:
    """One decoded quantity: the exact value in ``unit``, with the raw bytes it came from."""

    name: str  # what the quantity is, e.g. "current_cumulative_flow", "voltage_a"
    value: Decimal | None  # None when the meter marked the field unsupported (all FF)
    unit: str  # a Unit value for energy and volume; "V", "A", "kW", "Hz", "°C", "h", "" otherwise
    raw_hex: str  # the field's bytes as received (DL/T 645: after removing +33H)
    register: str | None = None  # the billing register it feeds ("total", "T1", "reverse"), if any
    unit_code: int | None = None  # the CJ/T 188 unit byte, kept because vendors reuse codes

    @property
    def base_unit(self) -> Unit | None:
        """The platform unit (m3, kWh, MWh, GJ, kvarh) this value is in, if it is one."""
        return _BASE_UNITS.get(self.unit)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form; the Decimal as a fixed-point string."""
        return {
            "name": self.name,
            "value": None if self.value is None else format(self.value, "f"),
            "unit": self.unit,
            "register": self.register,
            "raw": self.raw_hex,
            "unit_code": None if self.unit_code is None else f"0x{self.unit_code:02X}",
        }


@dataclass(frozen=True)
class MeterStatus:
    """A meter's status bits, named, with the raw bytes kept because vendors reuse bits."""

    raw_hex: str
    valve: ValveState | None = None
    relay: RelayState | None = None
    battery_low: bool | None = None
    flags: tuple[tuple[str, bool], ...] = ()  # every named bit, in wire order
    alarms: tuple[DeviceAlarmFlag, ...] = ()  # the raised bits that are platform alarm flags

    def flag(self, name: str) -> bool | None:
        """The named bit, or None when this status has no such bit."""
        return dict(self.flags).get(name)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "raw": self.raw_hex,
            "valve": None if self.valve is None else self.valve.value,
            "relay": None if self.relay is None else self.relay.value,
            "battery_low": self.battery_low,
            "flags": dict(self.flags),
            "alarms": [alarm.value for alarm in self.alarms],
        }


@dataclass(frozen=True)
class ValveCommand:
    """A CJ/T 188 valve write (DI A017) as sent by the master."""

    code: int  # the value byte: 55 open, 99 close, AA exercise, 77 half open (§1.5)
    action: ValveAction | None  # None for a code the profile does not name


@dataclass(frozen=True)
class RelayCommand:
    """A DL/T 645 relay-control request (C=1C, §2.6)."""

    code: int  # N1
    action: RelayAction | None
    password_level: int  # PA
    password_hex: str  # P0 P1 P2 as on the wire (low byte first)
    operator_hex: str  # C0..C3 as on the wire
    valid_until: WallClock | None
    valid_until_raw: str


@dataclass(frozen=True)
class DecodedFrame:
    """One frame, decoded: header, direction, error, data identifier, values, clock and status."""

    protocol: FrameProtocol
    version: str  # e.g. "CJ/T 188-2004", "DL/T 645-2007", "Modbus RTU", "EN 13757-3"
    address: str  # as printed on the nameplate (wire order reversed)
    control: int
    function: str
    direction: Direction
    raw_hex: str  # the frame without its FE preamble
    checksum_hex: str  # the checksum bytes as received (verified, or decoding would have failed)
    meter_type: int | None = None  # CJ/T 188 T byte
    utility: Utility | None = None
    follow_up: bool = False  # control bit D5: more frames follow
    is_error: bool = False
    error: str | None = None
    error_code: int | None = None
    data_id: str | None = None  # "901F", "00010000"
    data_id_order: DiOrder | None = None
    ser: int | None = None
    values: tuple[Measurement, ...] = ()
    meter_clock: WallClock | None = None  # the meter's own clock, in a reply
    set_time: WallClock | None = None  # the time a request writes or broadcasts
    status: MeterStatus | None = None
    valve_command: ValveCommand | None = None
    relay_command: RelayCommand | None = None
    preamble_fe: int = 0
    payload_hex: str = ""  # the data field (DL/T 645: after removing +33H)
    details: tuple[tuple[str, str], ...] = ()  # further decoded facts, for people
    notes: tuple[str, ...] = ()  # tolerated deviations from the standard

    def value(self, name: str) -> Measurement | None:
        """The measurement called ``name``, if the frame has one."""
        return next((m for m in self.values if m.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form: Decimals and datetimes as strings, enums as their values."""
        return {
            "protocol": self.protocol.value,
            "version": self.version,
            "address": self.address,
            "meter_type": None if self.meter_type is None else f"0x{self.meter_type:02X}",
            "utility": None if self.utility is None else self.utility.value,
            "control": f"0x{self.control:02X}",
            "function": self.function,
            "direction": self.direction.value,
            "follow_up": self.follow_up,
            "is_error": self.is_error,
            "error": self.error,
            "error_code": self.error_code,
            "data_id": self.data_id,
            "data_id_order": None if self.data_id_order is None else self.data_id_order.value,
            "ser": self.ser,
            "values": [m.to_json() for m in self.values],
            "meter_clock": None if self.meter_clock is None else self.meter_clock.isoformat(),
            "set_time": None if self.set_time is None else self.set_time.isoformat(),
            "status": None if self.status is None else self.status.to_json(),
            "valve_command": _valve_json(self.valve_command),
            "relay_command": _relay_json(self.relay_command),
            "checksum": {"ok": True, "value": self.checksum_hex},
            "preamble_fe": self.preamble_fe,
            "payload": self.payload_hex,
            "raw": self.raw_hex,
            "details": dict(self.details),
            "notes": list(self.notes),
        }


def _valve_json(command: ValveCommand | None) -> dict[str, Any] | None:
    if command is None:
        return None
    return {"code": f"0x{command.code:02X}", "action": None if command.action is None else command.action.value}


def _relay_json(command: RelayCommand | None) -> dict[str, Any] | None:
    if command is None:
        return None
    return {
        "code": f"0x{command.code:02X}",
        "action": None if command.action is None else command.action.value,
        "password_level": f"0x{command.password_level:02X}",
        "password": command.password_hex,
        "operator": command.operator_hex,
        "valid_until": None if command.valid_until is None else command.valid_until.isoformat(),
        "valid_until_raw": command.valid_until_raw,
    }
