"""CJ/T 188-2004 requests the head-end sends: read, read address, valve, write time (protocols.md §1.4, §1.5)."""

from __future__ import annotations

from amiflow_schemas.events.commands import ValveAction

from ingest.core.protocols.bcd import WallClock, clock_to_bcd, sum8, wire_address
from ingest.core.protocols.cjt188 import READ_ADDRESS, READ_DATA, VALVE, WRITE_TIME, settings_of
from ingest.core.protocols.framing import END, START, WAKEUP
from ingest.core.protocols.model import DiOrder
from ingest.core.protocols.profile import Cjt188Settings, MeterProfile

READ, WRITE, ADDRESS = 0x01, 0x04, 0x03  # §1.2 request function codes
WILDCARD_TYPE = 0xAA  # §1.5: read address goes to T=AA, address AA x7


def cjt188_frame(meter_type: int, address: bytes, control: int, data: bytes, wakeup: int = 0) -> bytes:
    """A whole frame: FE wake-up bytes, 68 T A0..A6 C L data CS 16 (CS from the 68, §1.2)."""
    if len(address) != 7 or len(data) > 0xFF:
        raise ValueError("a CJ/T 188 frame needs a 7-byte address and at most 255 data bytes")
    body = bytes([START, meter_type]) + address + bytes([control, len(data)]) + data
    return bytes([WAKEUP]) * wakeup + body + bytes([sum8(body), END])


def data_id_bytes(di: int, order: DiOrder) -> bytes:
    """The DI on the wire in the device's order (§4 item 2)."""
    return di.to_bytes(2, "little" if order is DiOrder.LOW_FIRST else "big")


def parse_data_id(text: str | int) -> int:
    """A 4-hex-digit CJ/T 188 data identifier such as ``901F``."""
    if isinstance(text, int):
        di = text
    else:
        try:
            di = int(text.strip(), 16)
        except ValueError:
            raise ValueError(f"data identifier {text!r} is not 4 hexadecimal digits") from None
    if not 0 <= di <= 0xFFFF:
        raise ValueError(f"data identifier {text!r} is not 4 hexadecimal digits")
    return di


def read_request(
    address: str, di: str | int = READ_DATA, *, ser: int = 0, profile: MeterProfile | None = None
) -> bytes:
    """Read a data identifier (default 901F, the metering data): C=01, data DI SER."""
    settings = settings_of(profile)
    return _request(settings, settings.meter_type, address, READ, parse_data_id(di), ser, b"")


def read_address_request(*, ser: int = 0, profile: MeterProfile | None = None) -> bytes:
    """Ask the only meter on the bus for its address: T=AA, address AA x7, C=03, DI 810A."""
    return _request(settings_of(profile), WILDCARD_TYPE, "A", ADDRESS, READ_ADDRESS, ser, b"")


def valve_request(address: str, action: ValveAction, *, ser: int = 0, profile: MeterProfile | None = None) -> bytes:
    """Write DI A017 with the model's valve value (55 open, 99 close, or its vendor codes)."""
    settings = settings_of(profile)
    codes = settings.valve
    if codes is None:
        raise ValueError("this meter model has no valve")
    code = {ValveAction.OPEN: codes.open, ValveAction.CLOSE: codes.close,
            ValveAction.EXERCISE: codes.exercise, ValveAction.HALF_OPEN: codes.half_open}[action]
    if code is None:
        raise ValueError(f"this meter model has no valve code for {action.value}")
    meter_type = codes.meter_type if codes.meter_type is not None else settings.meter_type
    return _request(settings, meter_type, address, codes.write_control, VALVE, ser, bytes([code]))


def write_time_request(address: str, at: WallClock, *, ser: int = 0, profile: MeterProfile | None = None) -> bytes:
    """Write DI A015, the standard time, laid out as the 901F clock (§1.5; order unconfirmed)."""
    settings = settings_of(profile)
    return _request(settings, settings.meter_type, address, WRITE, WRITE_TIME, ser, clock_to_bcd(at, year_bytes=2))


def _request(
    settings: Cjt188Settings, meter_type: int, address: str, control: int, di: int, ser: int, payload: bytes
) -> bytes:
    if not 0 <= ser <= 0xFF:
        raise ValueError(f"SER {ser} is not one byte")
    data = data_id_bytes(di, settings.di_order) + bytes([ser]) + payload
    return cjt188_frame(meter_type, wire_address(address, 7), control, data, settings.wakeup_fe)
