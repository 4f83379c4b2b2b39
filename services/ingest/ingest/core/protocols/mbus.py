"""M-Bus (EN 13757-2/-3) long frames through pymbusparser, with exact values in platform units (§3, §7)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pymbusparser
from amiflow_schemas.events.devices import DeviceAlarmFlag, FrameProtocol, RejectionReason
from amiflow_schemas.primitives import Utility

from ingest.core.protocols.errors import FrameError
from ingest.core.protocols.model import DecodedFrame, Direction, Measurement, MeterStatus
from ingest.core.protocols.profile import MeterProfile

VERSION = "EN 13757-3"
# VIF units pymbusparser reports -> (platform unit, factor). Energy and volume become our Unit.
UNITS = {"W.h": ("kWh", Decimal("0.001")), "J": ("GJ", Decimal("1E-9")), "m3": ("m3", Decimal(1)),
         "Cel": ("°C", Decimal(1))}
# EN 13757-3 medium codes -> utility.
MEDIA = {0x02: Utility.ELECTRICITY, 0x03: Utility.GAS, 0x04: Utility.HEAT, 0x0C: Utility.HEAT, 0x0D: Utility.HEAT,
         0x0A: Utility.HEAT, 0x0B: Utility.HEAT, 0x06: Utility.WATER, 0x07: Utility.WATER, 0x15: Utility.WATER,
         0x16: Utility.WATER}
_CURRENT = "Instantaneous value"


def decode_mbus(frame: bytes, direction: Direction, profile: MeterProfile | None) -> DecodedFrame:
    """Decode one validated long frame (68 L L 68 C A CI data CS 16)."""
    control, primary, ci = frame[4], frame[5], frame[6]
    parsed = _parse(frame, primary) if direction is Direction.REPLY else {}
    identity = parsed.get("meter", {}).get("identity", {}) if parsed else {}
    medium = identity.get("device_type_code")
    utility = profile.utility if profile is not None else MEDIA.get(medium) if isinstance(medium, int) else None
    values, notes = _records(parsed.get("records", []) if parsed else [], utility)
    if parsed and parsed.get("decode_state") != "complete":
        diagnostics = "; ".join(str(d.get("message")) for d in parsed.get("diagnostics", []))
        notes.append(f"M-Bus decode {parsed.get('decode_state')}: {diagnostics or 'no diagnostics'}")
    details = [("primary_address", str(primary)), ("ci", f"{ci:02X}")]
    details += [(k, str(identity[k])) for k in ("manufacturer_code", "device_type", "version") if k in identity]
    return DecodedFrame(
        protocol=FrameProtocol.MBUS, version=VERSION, address=str(identity.get("id", primary)), control=control,
        function=str(parsed.get("frame", {}).get("function", f"C={control:02X}")) if parsed else f"C={control:02X}",
        direction=direction, raw_hex=frame.hex(), checksum_hex=frame[-2:-1].hex(), utility=utility,
        values=values, status=_status(parsed), payload_hex=frame[6:-2].hex(), details=tuple(details),
        notes=tuple(notes),
    )


def _parse(frame: bytes, primary: int) -> dict[str, Any]:
    try:
        parsed = pymbusparser.parse(frame, include_enrichment=False)
    except pymbusparser.MbusParserError as exc:
        raise FrameError(RejectionReason.INVALID_VALUE, f"M-Bus: {exc}", protocol=FrameProtocol.MBUS,
                         address=str(primary)) from None
    except BaseException as exc:  # a Rust panic surfaces as pyo3's PanicException (a BaseException)
        if type(exc).__name__ != "PanicException":
            raise
        raise FrameError(RejectionReason.INVALID_VALUE, f"M-Bus decoder failed: {exc}", protocol=FrameProtocol.MBUS,
                         address=str(primary)) from None
    return parsed


def _records(records: list[dict[str, Any]], utility: Utility | None) -> tuple[tuple[Measurement, ...], list[str]]:
    values: list[Measurement] = []
    notes: list[str] = []
    taken: set[str] = set()
    for record in records:
        value = record.get("value", {})
        quantity = "_".join(record.get("quantities", ["value"])).lower().replace(" ", "_")
        if value.get("kind") != "decimal":
            notes.append(f"record {record.get('index')} ({quantity}) is {value.get('kind')}: {value.get('value')}")
            continue
        unit, factor = UNITS.get(str(record.get("unit")), (str(record.get("unit")), Decimal(1)))
        name = quantity + _suffix(record)
        register = _register(quantity, record, utility)
        if register in taken:
            register = None
        if register is not None:
            taken.add(register)
        raw = f"{record.get('header_hex', '')} {record.get('data_hex', '')}".replace(" ", "").lower()
        number = _decimal(value.get("value"))
        values.append(Measurement(name, None if number is None else number * factor, unit, raw, register))
    return tuple(values), notes


def _decimal(text: Any) -> Decimal | None:
    try:
        number = Decimal(str(text))
    except ArithmeticError:  # decimal.InvalidOperation
        return None
    return number if number.is_finite() else None


def _suffix(record: dict[str, Any]) -> str:
    parts = [] if record.get("function") == _CURRENT else [str(record.get("function", "")).split()[0].lower()]
    for key, tag in (("storage_number", "s"), ("tariff", "t"), ("subunit", "u")):
        if record.get(key):
            parts.append(f"{tag}{record[key]}")
    return "".join(f"_{p}" for p in parts)


def _register(quantity: str, record: dict[str, Any], utility: Utility | None) -> str | None:
    # Only the current, untariffed value is a reading; the rest is history or diagnostics.
    if record.get("function") != _CURRENT or any(record.get(k) for k in ("storage_number", "tariff", "subunit")):
        return None
    if quantity == "energy":
        return "total"
    if quantity == "volume":
        return "total" if utility in (Utility.WATER, Utility.GAS) else "volume"
    return None


def _status(parsed: dict[str, Any]) -> MeterStatus | None:
    statuses = parsed.get("transport", {}).get("statuses", []) if parsed else []
    if not statuses or not isinstance(statuses[0].get("raw"), str):
        return None
    try:
        byte = int(statuses[0]["raw"], 16) & 0xFF
    except ValueError:
        return None
    # EN 13757-3 status byte: b0-b1 application state, b2 power low, b3 permanent, b4 temporary error.
    flags = (("application_busy", byte & 0b11 == 0b01), ("application_error", byte & 0b11 == 0b10),
             ("power_low", bool(byte & 0x04)), ("permanent_error", bool(byte & 0x08)),
             ("temporary_error", bool(byte & 0x10)))
    alarms = (DeviceAlarmFlag.DEVICE_FAULT,) if byte & 0x08 else ()
    return MeterStatus(f"{byte:02x}", battery_low=bool(byte & 0x04), flags=flags, alarms=alarms)
