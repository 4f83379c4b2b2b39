"""DL/T 645-2007 frames (electricity meters): header, +33H data, DI, values, relay and time (protocols.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field

from amiflow_schemas.events.commands import RelayAction
from amiflow_schemas.events.devices import FrameProtocol, RejectionReason
from amiflow_schemas.primitives import Utility

from ingest.core.protocols.bcd import NotBcdError, WallClock, bcd_value, clock_from_bcd, printed_address
from ingest.core.protocols.dlt645_items import (
    ADDRESS,
    DATE,
    STATUS_BLOCK,
    STATUS_WORDS,
    TIME,
    items_for,
    run_status,
)
from ingest.core.protocols.errors import FrameError
from ingest.core.protocols.framing import dlt645_edition
from ingest.core.protocols.model import DecodedFrame, Direction, Measurement, MeterStatus, RelayCommand

VERSION = "DL/T 645-2007"
SCRAMBLE = 0x33  # §2.2: every data byte goes out +33H (mod 256), DI included
BROADCAST_TIME, READ, FOLLOW_UP, READ_ADDRESS, WRITE, WRITE_ADDRESS, RELAY = 0x08, 0x11, 0x12, 0x13, 0x14, 0x15, 0x1C
FUNCTIONS = {  # §2.3
    BROADCAST_TIME: "broadcast time sync", READ: "read data", FOLLOW_UP: "read follow-up frame",
    READ_ADDRESS: "read address", WRITE: "write data", WRITE_ADDRESS: "write address", 0x16: "freeze",
    0x17: "change baud rate", 0x18: "change password", 0x19: "clear maximum demand", 0x1A: "clear meter",
    0x1B: "clear events", RELAY: "relay control",
}
# §2.5 ERR bits b0..b7 (shixin FrameCodecTests.ErrorWord).
ERROR_BITS = ("other error", "no requested data", "password wrong or unauthorised", "baud rate cannot be changed",
              "annual time-zone count exceeded", "daily time-slot count exceeded", "tariff count exceeded",
              "reserved bit 7")
# §2.6 N1 values.
RELAY_ACTIONS = {0x1A: RelayAction.TRIP, 0x1B: RelayAction.CLOSE_ALLOWED, 0x1C: RelayAction.CLOSE_DIRECT,
                 0x2A: RelayAction.ALARM, 0x2B: RelayAction.ALARM_RELEASE, 0x3A: RelayAction.KEEP_POWER,
                 0x3B: RelayAction.KEEP_POWER_RELEASE}


def unscramble(wire: bytes) -> bytes:
    """Remove the +33H offset from every data byte (§2.2, §4 item 4)."""
    return bytes((b - SCRAMBLE) & 0xFF for b in wire)


def scramble(plain: bytes) -> bytes:
    """Add the +33H offset to every data byte."""
    return bytes((b + SCRAMBLE) & 0xFF for b in plain)


def error_text(err: int) -> str:
    """The meanings of the ERR bits that are set."""
    return "; ".join(text for bit, text in enumerate(ERROR_BITS) if err >> bit & 1) or "no error bit set"


@dataclass
class _Content:
    di: int | None = None
    values: tuple[Measurement, ...] = ()
    set_time: WallClock | None = None
    status: MeterStatus | None = None
    relay: RelayCommand | None = None
    details: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def decode_dlt645(frame: bytes, preamble: int) -> DecodedFrame:
    """Decode one validated DL/T 645 frame (68 .. 16, no preamble); 1997 frames are refused."""
    address, control, data = printed_address(frame[1:7]), frame[8], unscramble(frame[10:-2])
    function_code = control & 0x1F
    if dlt645_edition(control, len(data)) is FrameProtocol.DLT645_1997:
        raise FrameError(
            RejectionReason.UNKNOWN_PROTOCOL,
            f"DL/T 645-1997 frame (C={control:02X}, 2-byte DI {data[1::-1].hex().upper() if len(data) >= 2 else '-'}): "
            "only DL/T 645-2007 is supported",
            protocol=FrameProtocol.DLT645_1997, address=address,
        )
    if function_code not in FUNCTIONS:
        raise FrameError(RejectionReason.UNKNOWN_PROTOCOL, f"C={control:02X}: {function_code:02X} is no DL/T 645-2007 "
                         "function", protocol=FrameProtocol.DLT645_2007, address=address)
    direction = Direction.REPLY if control & 0x80 else Direction.REQUEST
    abnormal = control & 0xC0 == 0xC0
    try:
        content = _Content() if abnormal else _content(function_code, direction, data)
    except FrameError as exc:
        raise FrameError(exc.reason, exc.detail, protocol=FrameProtocol.DLT645_2007, address=address) from None
    err = data[0] if abnormal and data else None
    return DecodedFrame(
        protocol=FrameProtocol.DLT645_2007, version=VERSION, address=address, control=control,
        function=FUNCTIONS[function_code], direction=direction, raw_hex=frame.hex(), checksum_hex=frame[-2:-1].hex(),
        utility=Utility.ELECTRICITY, follow_up=bool(control & 0x20), is_error=abnormal,
        error=None if not abnormal else (error_text(err) if err is not None else "abnormal reply without ERR byte"),
        error_code=err, data_id=None if content.di is None else f"{content.di:08X}", values=content.values,
        set_time=content.set_time, status=content.status, relay_command=content.relay, preamble_fe=preamble,
        payload_hex=data.hex(), details=tuple(content.details), notes=tuple(content.notes),
    )


def _content(function: int, direction: Direction, data: bytes) -> _Content:
    content = _Content()
    if function in (READ, FOLLOW_UP, WRITE):
        _need(data, 4, "a 4-byte DI")
        content.di = int.from_bytes(data[:4], "little")  # §2.4: DI0 first on the wire
        rest = data[4:]
        if direction is Direction.REPLY and function != WRITE:
            if function == FOLLOW_UP and rest:
                content.details.append(("sequence", str(rest[-1])))  # §2.3: the follow-up reply ends in SEQ
                rest = rest[:-1]
            _read_reply(content.di, rest, content)
        elif rest:
            content.details.append(("request_data", rest.hex()))
    elif function == READ_ADDRESS and direction is Direction.REPLY:
        _need(data, 6, "the 6-byte address")
        content.details.append(("address_read", printed_address(data[:6])))
    elif function == WRITE_ADDRESS and direction is Direction.REQUEST:
        _need(data, 6, "the new 6-byte address")
        content.details.append(("new_address", printed_address(data[:6])))
    elif function == BROADCAST_TIME:
        _need(data, 6, "ss mm hh DD MM YY")
        content.set_time, _ = clock_from_bcd(data[:6], year_bytes=1)
        if content.set_time is None:
            raise FrameError(RejectionReason.INVALID_VALUE, f"broadcast time {data[:6].hex(' ').upper()} is no date")
    elif function == RELAY and direction is Direction.REQUEST:
        content.relay = _relay(data)
    elif data:
        content.details.append(("data", data.hex()))
    return content


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise FrameError(RejectionReason.TRUNCATED, f"L={len(data)} is too short for {what}")


def _relay(data: bytes) -> RelayCommand:
    # §2.6: PA(1) P0..P2(3) C0..C3(4) N1 N2 N3..N8 (valid until ss mm hh DD MM YY).
    _need(data, 16, "relay control (16 bytes)")
    valid_until, _ = clock_from_bcd(data[10:16], year_bytes=1)
    return RelayCommand(code=data[8], action=RELAY_ACTIONS.get(data[8]), password_level=data[0],
                        password_hex=data[1:4].hex(), operator_hex=data[4:8].hex(), valid_until=valid_until,
                        valid_until_raw=data[10:16].hex())


def _read_reply(di: int, rest: bytes, content: _Content) -> None:
    if di in (DATE, TIME, ADDRESS) or di in STATUS_WORDS or di == STATUS_BLOCK:
        _parameter(di, rest, content)
        return
    items = items_for(di, len(rest))
    if items is None:
        raise FrameError(RejectionReason.UNSUPPORTED_DATA_ID, f"unknown DI {di:08X}: no value format for it")
    needed = sum(item.size for item in items)
    _need(rest, needed, f"DI {di:08X} ({needed} value bytes after the DI)")
    values, offset = [], 0
    for item in items:
        chunk = rest[offset : offset + item.size]
        offset += item.size
        try:
            value = bcd_value(chunk, item.decimals, signed=item.signed)
        except NotBcdError:
            raise FrameError(RejectionReason.INVALID_VALUE, f"DI {di:08X}: {item.name} bytes "
                             f"{chunk.hex(' ').upper()} are not BCD") from None
        values.append(Measurement(item.name, value, item.unit, chunk.hex(), item.register))
    content.values = tuple(values)
    if offset < len(rest):  # e.g. L=9 replies to 00010000 (§4 item 6, Fox Edge TestUtils07)
        content.notes.append(f"{len(rest) - offset} byte(s) after the DI {di:08X} value ignored: {rest[offset:].hex()}")


def _parameter(di: int, rest: bytes, content: _Content) -> None:
    if di == DATE:  # YYMMDDWW, sent WW DD MM YY
        _need(rest, 4, "WW DD MM YY")
        content.details += [("meter_date", f"20{rest[3]:02X}-{rest[2]:02X}-{rest[1]:02X}"), ("weekday", f"{rest[0]:X}")]
    elif di == TIME:  # hhmmss, sent ss mm hh
        _need(rest, 3, "ss mm hh")
        content.details.append(("meter_time", f"{rest[2]:02X}:{rest[1]:02X}:{rest[0]:02X}"))
    elif di == ADDRESS:
        _need(rest, 6, "the 6-byte address")
        content.details.append(("address_read", printed_address(rest[:6])))
    else:
        first = 1 if di == STATUS_BLOCK else di - STATUS_WORDS[0] + 1
        count = 7 if di == STATUS_BLOCK else 1
        _need(rest, 2 * count, f"{count} run-status word(s)")
        words = {first + i: int.from_bytes(rest[2 * i : 2 * i + 2], "little") for i in range(count)}
        content.status = run_status(words, rest[: 2 * count])
