"""CJ/T 188 payload fields: the unit byte table, the 901F layouts and the ST status bits."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from amiflow_schemas.events.devices import DeviceAlarmFlag, RejectionReason
from amiflow_schemas.primitives import ValveState

from ingest.core.protocols.bcd import NotBcdError, WallClock, bcd_value, clock_from_bcd
from ingest.core.protocols.errors import FrameError
from ingest.core.protocols.model import Measurement, MeterStatus
from ingest.core.protocols.profile import FieldKind, LayoutField, StatusBit, UnitScale


def _steps(first: int, unit: str, base: str) -> dict[int, tuple[str, Decimal]]:
    # The standard lists each unit with its x10 and x100 steps on the next two codes.
    return {first + i: (unit, Decimal(base).scaleb(i)) for i in range(3)}


# protocols.md §1.4 unit codes (KingDa header, Fox Edge, ng-gateway `Unit::from_code`): each code
# maps to the platform unit the value is converted to and the factor that converts it.
UNIT_CODES: dict[int, tuple[str, Decimal]] = {
    0x01: ("GJ", Decimal("1E-9")),  # J
    **_steps(0x02, "kWh", "0.001"),  # Wh, Wh x10, Wh x100
    **_steps(0x05, "kWh", "1"),
    **_steps(0x08, "MWh", "1"),
    **_steps(0x0B, "GJ", "1E-6"),  # kJ
    **_steps(0x0E, "GJ", "0.001"),  # MJ
    **_steps(0x11, "GJ", "1"),
    **_steps(0x14, "kW", "0.001"),  # W
    **_steps(0x17, "kW", "1"),
    **_steps(0x1A, "kW", "1000"),  # MW
    **_steps(0x29, "m3", "0.001"),  # L; 2B = L x100 (tanmoyAtb reads it as m3 with 3 decimals)
    **_steps(0x2C, "m3", "1"),
    **_steps(0x32, "m3/h", "0.001"),  # L/h
    **_steps(0x35, "m3/h", "1"),
    0x40: ("GJ/h", Decimal("1E-9")),  # J/h (ng-gateway)
    **_steps(0x43, "GJ/h", "1E-6"),  # kJ/h
    **_steps(0x46, "GJ/h", "0.001"),  # MJ/h
    **_steps(0x49, "GJ/h", "1"),
}


def _flow(name: str, register: str | None = None, decimals: int = 2) -> LayoutField:
    return LayoutField(kind=FieldKind.BCD_UNIT, name=name, size=4, decimals=decimals, register=register)


_CLOCK = LayoutField(kind=FieldKind.CLOCK)
_STATUS = LayoutField(kind=FieldKind.STATUS)

# §1.4: water and gas 901F, 19 bytes after DI + SER (L = 0x16).
WATER_GAS_901F = (
    _flow("current_cumulative_flow", "total"), _flow("settlement_cumulative_flow"), _CLOCK, _STATUS,
)
# §1.4 heat 901F after xijunzhou cj188.h, 43 bytes after DI + SER. The spec gives no decimals for
# power and flow rate; XXXXXX.XX and XXXX.XXXX follow ng-gateway's flow-rate format.
HEAT_901F = (
    _flow("settlement_heat"), _flow("current_heat", "total"), _flow("heat_power"),
    _flow("flow_rate", decimals=4), _flow("cumulative_flow", "volume"),
    LayoutField(kind=FieldKind.BCD, name="supply_temperature", size=3, decimals=2, unit="°C"),
    LayoutField(kind=FieldKind.BCD, name="return_temperature", size=3, decimals=2, unit="°C"),
    LayoutField(kind=FieldKind.BCD, name="working_hours", size=3, decimals=0, unit="h"),
    _CLOCK, _STATUS,
)
# §1.4: D120..D12B, the settlement-day flow 1..12 months ago (4 BCD + unit).
HISTORY = (_flow("settlement_cumulative_flow"),)


@dataclass
class DecodedFields:
    """What a payload layout yielded; assembled into a DecodedFrame by the caller."""

    values: list[Measurement] = field(default_factory=list)
    clock: WallClock | None = None
    clock_invalid: bool = False
    status_raw: bytes | None = None
    notes: list[str] = field(default_factory=list)


def decode_layout(
    layout: tuple[LayoutField, ...], payload: bytes, di: str, units: dict[int, UnitScale]
) -> DecodedFields:
    """Decode ``payload`` field by field; raises FrameError when it is shorter than the layout."""
    out = DecodedFields()
    offset = 0
    for spec in layout:
        chunk = payload[offset : offset + spec.width]
        if len(chunk) < spec.width:
            raise FrameError(
                RejectionReason.TRUNCATED,
                f"DI {di}: the payload has {len(payload)} bytes, the layout needs "
                f"{sum(f.width for f in layout)} ({spec.name or spec.kind.value} is cut off)",
            )
        offset += spec.width
        _decode_field(spec, chunk, di, units, out)
    if offset < len(payload):
        out.notes.append(f"DI {di}: {len(payload) - offset} byte(s) after the layout ignored")
    return out


def _decode_field(spec: LayoutField, chunk: bytes, di: str, units: dict[int, UnitScale], out: DecodedFields) -> None:
    if spec.kind is FieldKind.CLOCK:
        out.clock, out.clock_invalid = clock_from_bcd(chunk, year_bytes=2)
    elif spec.kind is FieldKind.STATUS:
        out.status_raw = chunk
    elif spec.kind is FieldKind.BCD_UNIT:
        out.values.append(_measure(spec, chunk[:-1], chunk[-1], chunk, di, units))
    elif spec.kind is FieldKind.UNIT_BCD:
        out.values.append(_measure(spec, chunk[1:], chunk[0], chunk, di, units))
    elif spec.kind is FieldKind.BCD:
        value = _bcd(spec, chunk, di)
        out.values.append(Measurement(spec.name, value, spec.unit, chunk.hex(), spec.register))


def _bcd(spec: LayoutField, digits: bytes, di: str) -> Decimal | None:
    try:
        return bcd_value(digits, spec.decimals)
    except NotBcdError:
        raise FrameError(
            RejectionReason.INVALID_VALUE, f"DI {di}: {spec.name} bytes {digits.hex(' ').upper()} are not BCD"
        ) from None


def _measure(
    spec: LayoutField, digits: bytes, code: int, raw: bytes, di: str, units: dict[int, UnitScale]
) -> Measurement:
    value = _bcd(spec, digits, di)
    override = units.get(code)
    unit, factor = (override.unit, override.factor) if override else UNIT_CODES.get(code, (f"code 0x{code:02X}", None))
    if value is not None and factor is not None:
        value = value * factor
    return Measurement(spec.name, value, unit, raw.hex(), spec.register, code)


_VALVE = {0b00: ValveState.OPEN, 0b01: ValveState.CLOSED, 0b11: ValveState.ABNORMAL}  # 10 is undefined
_ALARMS = {flag.value: flag for flag in DeviceAlarmFlag}


def decode_status(raw: bytes, layout: str, vendor_bits: tuple[StatusBit, ...], clock_invalid: bool) -> MeterStatus:
    """ST byte 1: valve (00 open, 01 closed, 11 abnormal) and battery low; vendor bits by profile.

    protocols.md §5 item 2: the standard layout is D1 D0 valve, D2 battery (LSB = D0). xijunzhou's
    firmware masks the top bits instead (C0 valve: 40 closed, C0 abnormal; 20 battery), which a
    profile selects with ``st_layout: high_bits``.
    """
    first = raw[0]
    valve_bits, battery = (first >> 6, first >> 5 & 1) if layout == "high_bits" else (first & 0b11, first >> 2 & 1)
    valve = _VALVE.get(valve_bits)
    flags: list[tuple[str, bool]] = [("valve_bits_undefined", valve is None), ("battery_low", bool(battery))]
    for bit in vendor_bits:
        flags.append((bit.name, bool(raw[bit.byte - 1] >> bit.bit & 1)))
    if clock_invalid:
        flags.append((DeviceAlarmFlag.CLOCK_INVALID.value, True))
    alarms = tuple(dict.fromkeys(_ALARMS[name] for name, raised in flags if raised and name in _ALARMS))
    return MeterStatus(raw.hex(), valve=valve, battery_low=bool(battery), flags=tuple(flags), alarms=alarms)
