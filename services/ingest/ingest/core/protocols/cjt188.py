"""CJ/T 188-2004 frames (water, gas, heat meters): header, data identifier and payload (protocols.md §1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from amiflow_schemas.events.commands import ValveAction
from amiflow_schemas.events.devices import FrameProtocol, RejectionReason
from amiflow_schemas.primitives import Utility

from ingest.core.protocols.bcd import WallClock, clock_from_bcd, printed_address
from ingest.core.protocols.cjt188_fields import HEAT_901F, HISTORY, WATER_GAS_901F, decode_layout, decode_status
from ingest.core.protocols.errors import FrameError
from ingest.core.protocols.model import (
    DecodedFrame,
    DiOrder,
    Direction,
    Measurement,
    MeterStatus,
    ValveCommand,
)
from ingest.core.protocols.profile import Cjt188Settings, LayoutField, MeterProfile, ValveCodes

VERSION = "CJ/T 188-2004"
READ_DATA, READ_ADDRESS, WRITE_TIME, VALVE, WRITE_ADDRESS = 0x901F, 0x810A, 0xA015, 0xA017, 0xA018
HISTORY_FIRST, HISTORY_LAST = 0xD120, 0xD12B  # settlement-day flow 1..12 months ago (§1.4)

# §1.2 function codes (KingDa header, xijunzhou cj188.h).
FUNCTIONS = {0x01: "read data", 0x03: "read address", 0x04: "write data", 0x09: "read key version",
             0x15: "write address", 0x16: "write motor sync"}
# §1.4 and §1.5 (KingDa header); D120..D12B are named by range.
DATA_IDS = {
    READ_DATA: "metering data", 0x8102: "price table", 0x8103: "settlement day", 0x8104: "reading day",
    0x8105: "purchased amount", 0x8106: "key version", READ_ADDRESS: "address", 0xA010: "write price table",
    0xA011: "write settlement day", 0xA012: "write reading day", 0xA013: "write purchase amount",
    0xA014: "write key", WRITE_TIME: "write standard time", 0xA016: "write motor sync",
    VALVE: "valve control", WRITE_ADDRESS: "write address", 0xA019: "factory enable",
}
_WRITES = range(0xA010, 0xA01A)
GENERIC = Cjt188Settings(meter_type=0x10, valve=ValveCodes())


def settings_of(profile: MeterProfile | None) -> Cjt188Settings:
    """The profile's CJ/T 188 settings, or the generic 2004 water meter's."""
    return profile.cjt188 if profile is not None and profile.cjt188 is not None else GENERIC


def utility_of(meter_type: int) -> Utility | None:
    """The utility a T byte names (§1.2): 1x water, 2x heat, 3x gas."""
    if (meter_type & 0x0F) > 9:
        return None
    return {0x1: Utility.WATER, 0x2: Utility.HEAT, 0x3: Utility.GAS}.get(meter_type >> 4)


def identify_data_id(wire: bytes, settings: Cjt188Settings) -> tuple[int, DiOrder]:
    """The DI and the byte order it came in; both orders are accepted on receive (§5 item 1)."""
    high, low = wire[0] << 8 | wire[1], wire[1] << 8 | wire[0]
    for di, order in ((high, DiOrder.HIGH_FIRST), (low, DiOrder.LOW_FIRST)):
        if di in DATA_IDS or HISTORY_FIRST <= di <= HISTORY_LAST or f"{di:04X}" in settings.data_ids:
            return di, order
    return high, DiOrder.UNKNOWN


def valve_action(code: int, codes: ValveCodes) -> ValveAction | None:
    """The action a valve value byte asks for under this model's codes."""
    named = {codes.open: ValveAction.OPEN, codes.close: ValveAction.CLOSE}
    for extra, action in ((codes.exercise, ValveAction.EXERCISE), (codes.half_open, ValveAction.HALF_OPEN)):
        if extra is not None:
            named.setdefault(extra, action)
    return named.get(code)


@dataclass
class _Content:
    data_id: str | None = None
    order: DiOrder | None = None
    ser: int | None = None
    error: str | None = None
    values: tuple[Measurement, ...] = ()
    clock: WallClock | None = None
    set_time: WallClock | None = None
    status: MeterStatus | None = None
    valve_command: ValveCommand | None = None
    details: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def decode_cjt188(frame: bytes, preamble: int, profile: MeterProfile | None) -> DecodedFrame:
    """Decode one validated CJ/T 188 frame (68 .. 16, no preamble)."""
    settings = settings_of(profile)
    meter_type, control, data = frame[1], frame[9], frame[11:-2]
    address = printed_address(frame[2:9])
    direction = Direction.REPLY if control & 0x80 else Direction.REQUEST
    function = _function(control, settings)
    utility = profile.utility if profile is not None else utility_of(meter_type)
    try:
        if control & 0xC0 == 0xC0:  # D7 reply + D6 abnormal (§1.2)
            content = _abnormal(data, settings, function)
        else:
            content = _normal(data, direction, control, settings, utility)
    except FrameError as exc:
        raise FrameError(exc.reason, exc.detail, protocol=FrameProtocol.CJT188, address=address) from None
    return DecodedFrame(
        protocol=FrameProtocol.CJT188, version=VERSION, address=address, control=control, function=function,
        direction=direction, raw_hex=frame.hex(), checksum_hex=frame[-2:-1].hex(), meter_type=meter_type,
        utility=utility, follow_up=bool(control & 0x20), is_error=content.error is not None, error=content.error,
        data_id=content.data_id, data_id_order=content.order, ser=content.ser, values=content.values,
        meter_clock=content.clock, set_time=content.set_time, status=content.status,
        valve_command=content.valve_command, preamble_fe=preamble, payload_hex=data.hex(),
        details=tuple(content.details), notes=tuple(content.notes),
    )


def _normal(
    data: bytes, direction: Direction, control: int, settings: Cjt188Settings, utility: Utility | None
) -> _Content:
    if len(data) < 3:
        raise FrameError(RejectionReason.TRUNCATED, f"L={len(data)} leaves no room for DI and SER")
    di, order = identify_data_id(data[:2], settings)
    if direction is Direction.REQUEST:
        content = _request(di, data[3:], settings, control)
    else:
        content = _reply(di, data[3:], settings, utility)
    content.data_id, content.order, content.ser = f"{di:04X}", order, data[2]
    content.details.insert(0, ("data_id_name", DATA_IDS.get(di, _history_name(di))))
    return content


def _function(control: int, settings: Cjt188Settings) -> str:
    valve = settings.valve
    if valve is not None and control in (valve.write_control, valve.reply_control) and valve.write_control != 0x04:
        return f"valve control (vendor control code {control:02X})"  # §5 item 4: Fox Edge 2A/AA
    return FUNCTIONS.get(control & 0x1F, f"vendor function {control & 0x1F:02X}")


def _history_name(di: int) -> str:
    if HISTORY_FIRST <= di <= HISTORY_LAST:
        return f"settlement-day flow {di - HISTORY_FIRST + 1} month(s) ago"
    return "vendor or unknown"


def _abnormal(data: bytes, settings: Cjt188Settings, function: str) -> _Content:
    # §1.2: the abnormal payload is SER + ST(2) (KingDa); some meters put the DI in front.
    ser, st = (data[2], data[3:5]) if len(data) >= 5 else (data[0], data[1:3]) if len(data) >= 3 else (None, b"")
    content = _Content(ser=ser, error=f"the meter refused the {function} request (abnormal reply)")
    if len(st) == 2:
        content.status = decode_status(st, settings.st_layout, settings.status_bits, False)
        content.error = f"{content.error}; ST {st.hex(' ').upper()}"
    return content


def _request(di: int, payload: bytes, settings: Cjt188Settings, control: int) -> _Content:
    content = _Content()
    codes = settings.valve or ValveCodes()
    if di == VALVE and not payload and control in (0x04, codes.write_control):
        raise FrameError(RejectionReason.TRUNCATED, "valve write A017 carries no valve value byte")
    if di == VALVE and payload:
        content.valve_command = ValveCommand(payload[0], valve_action(payload[0], codes))
    elif di == WRITE_TIME and len(payload) >= 7:
        content.set_time, invalid = clock_from_bcd(payload[:7], year_bytes=2)  # §1.5: as the 901F clock
        if invalid:
            content.notes.append(f"A015 time {payload[:7].hex(' ').upper()} is not a valid BCD date")
    elif di == WRITE_ADDRESS and len(payload) >= 7:
        content.details.append(("new_address", printed_address(payload[:7])))
    elif payload:
        content.details.append(("request_payload", payload.hex()))
    return content


def _reply(di: int, payload: bytes, settings: Cjt188Settings, utility: Utility | None) -> _Content:
    layout = _layout(di, len(payload), settings, utility)
    if layout is not None:
        return _from_layout(layout, di, payload, settings)
    content = _Content()
    if di == READ_ADDRESS:
        # §1.5 / §5 item 5: the address is in the header (L=03), or in the data too (L=0A).
        if len(payload) >= 7:
            content.details.append(("address_read", printed_address(payload[:7])))
    elif di in _WRITES:
        # §1.5: a write reply carries ST, the state after the command (A017: the valve).
        if len(payload) >= 2:
            content.status = decode_status(payload[:2], settings.st_layout, settings.status_bits, False)
    else:
        name = DATA_IDS.get(di)
        what = f"DI {di:04X} ({name}) is known but not decoded" if name else (
            f"unknown DI: wire bytes {di >> 8:02X} {di & 0xFF:02X} are no CJ/T 188 data identifier in either byte "
            "order (a vendor DI needs a layout in the meter's profile)")
        raise FrameError(RejectionReason.UNSUPPORTED_DATA_ID, what)
    return content


def _layout(di: int, size: int, settings: Cjt188Settings, utility: Utility | None) -> tuple[LayoutField, ...] | None:
    custom = settings.data_ids.get(f"{di:04X}")
    if custom is not None:
        return custom
    if HISTORY_FIRST <= di <= HISTORY_LAST:
        return HISTORY
    if di != READ_DATA:
        return None
    heat = utility is Utility.HEAT if utility is not None else size >= _width(HEAT_901F)
    preferred, other = (HEAT_901F, WATER_GAS_901F) if heat else (WATER_GAS_901F, HEAT_901F)
    # §5 item 14: T is not always the meter's kind; a payload that fits only the other layout wins.
    return other if size < _width(preferred) and size >= _width(other) else preferred


def _width(layout: tuple[LayoutField, ...]) -> int:
    return sum(f.width for f in layout)


def _from_layout(layout: tuple[LayoutField, ...], di: int, payload: bytes, settings: Cjt188Settings) -> _Content:
    fields = decode_layout(layout, payload, f"{di:04X}", settings.unit_codes)
    content = _Content(values=tuple(fields.values), clock=fields.clock, notes=fields.notes)
    if fields.status_raw is not None:
        content.status = decode_status(
            fields.status_raw, settings.st_layout, settings.status_bits, fields.clock_invalid
        )
    if HISTORY_FIRST <= di <= HISTORY_LAST:
        content.details.append(("months_ago", str(di - HISTORY_FIRST + 1)))
    return content
