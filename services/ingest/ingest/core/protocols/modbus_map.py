"""Modbus frames as DecodedFrames, with a model's register map turning words into values."""

from __future__ import annotations

import math
import struct
from decimal import Decimal

from amiflow_schemas.events.devices import FrameProtocol, RejectionReason

from ingest.core.protocols.errors import FrameError
from ingest.core.protocols.modbus import EXCEPTIONS, FUNCTIONS, ModbusMessage, crc16, decode_pdu
from ingest.core.protocols.model import DecodedFrame, Direction, Measurement
from ingest.core.protocols.profile import MeterProfile, ModbusRegister

_VERSIONS = {FrameProtocol.MODBUS_RTU: "Modbus RTU", FrameProtocol.MODBUS_TCP: "Modbus TCP"}
_READS = (3, 4)


def split_adu(frame: bytes, protocol: FrameProtocol) -> tuple[int, bytes, str]:
    """(unit id, PDU, checksum hex) of a validated RTU or TCP ADU."""
    if protocol is FrameProtocol.MODBUS_TCP:
        return frame[6], frame[7:], ""
    return frame[0], frame[1:-2], frame[-2:].hex()


def decode_modbus(
    frame: bytes, protocol: FrameProtocol, direction: Direction, profile: MeterProfile | None,
    request: ModbusMessage | None,
) -> DecodedFrame:
    """Decode one validated Modbus ADU; register replies are mapped when the start address is known."""
    unit_id, pdu, checksum = split_adu(frame, protocol)
    try:
        message = decode_pdu(unit_id, pdu, direction)
    except FrameError as exc:
        raise FrameError(exc.reason, exc.detail, protocol=protocol, address=str(unit_id)) from None
    details: list[tuple[str, str]] = []
    notes: list[str] = []
    values: tuple[Measurement, ...] = ()
    if message.address is not None:
        details += [("first_register", f"0x{message.address:04X}"), ("count", str(message.count))]
    if message.registers:
        details.append(("registers", " ".join(f"{r:04X}" for r in message.registers)))
        start = _start_address(message, profile, request, notes)
        if start is not None and profile is not None and profile.modbus is not None:
            values = map_registers(message.registers, start, message.function, profile.modbus.registers)
    error = None if message.exception_code is None else EXCEPTIONS.get(
        message.exception_code, f"exception code {message.exception_code:02X}")
    return DecodedFrame(
        protocol=protocol, version=_VERSIONS[protocol], address=str(unit_id), control=pdu[0],
        function=FUNCTIONS.get(message.function, f"function {message.function:02X}"), direction=direction,
        raw_hex=frame.hex(), checksum_hex=checksum, utility=None if profile is None else profile.utility,
        is_error=error is not None, error=error, error_code=message.exception_code, values=values,
        payload_hex=pdu.hex(), details=tuple(details), notes=tuple(notes),
    )


def _start_address(
    reply: ModbusMessage, profile: MeterProfile | None, request: ModbusMessage | None, notes: list[str]
) -> int | None:
    # An RTU/TCP reply does not repeat the first register: take it from our request, or from the
    # one read of the profile that asks for exactly this many registers.
    if request is not None and request.function == reply.function and request.address is not None:
        return request.address
    if profile is None or profile.modbus is None:
        return None
    starts = [a for f, a, n in profile.modbus.read_blocks() if f == reply.function and n == len(reply.registers)]
    if len(starts) == 1:
        return starts[0]
    notes.append("register map not applied: pass the request to tell which registers this reply holds")
    return None


def map_registers(
    registers: tuple[int, ...], start: int, function: int, register_map: tuple[ModbusRegister, ...]
) -> tuple[Measurement, ...]:
    """The register map's values found in ``registers`` read from ``start`` with ``function``."""
    values = []
    for spec in register_map:
        offset = spec.address - start
        if spec.function != function or offset < 0 or offset + spec.count > len(registers):
            continue
        words = registers[offset : offset + spec.count]
        raw = b"".join(w.to_bytes(2, "big") for w in words)
        ordered = raw if spec.word_order == "big" else raw[2:] + raw[:2]
        number = _number(spec.type, ordered)
        value = None if number is None else number * spec.scale
        values.append(Measurement(spec.name, value, spec.unit, raw.hex(), spec.register))
    return tuple(values)


def _number(kind: str, raw: bytes) -> Decimal | None:
    if kind == "float32":
        return _float32(raw)
    return Decimal(int.from_bytes(raw, "big", signed=kind.startswith("int")))


def _float32(raw: bytes) -> Decimal | None:
    (number,) = struct.unpack(">f", raw)
    if not math.isfinite(number):
        return None
    # The shortest decimal that reads back as the same float32: a register holds 7 digits, not
    # the 17 a Python float would print.
    for digits in range(1, 10):
        text = f"{number:.{digits}g}"
        if struct.pack(">f", float(text)) == raw:
            return Decimal(text)
    return Decimal(repr(number))


def reply_request(raw_request: bytes | None, protocol: FrameProtocol) -> ModbusMessage | None:
    """Decode the request a reply answers (an RTU or TCP ADU we sent), or None."""
    if raw_request is None:
        return None
    if protocol is FrameProtocol.MODBUS_RTU and (len(raw_request) < 4 or crc16(raw_request[:-2]) != raw_request[-2:]):
        raise FrameError(RejectionReason.INVALID_REQUEST, "the request given is not an RTU frame with a valid CRC",
                         protocol=protocol)
    if protocol is FrameProtocol.MODBUS_TCP and len(raw_request) < 8:
        raise FrameError(RejectionReason.INVALID_REQUEST, "the request given is not a Modbus TCP ADU",
                         protocol=protocol)
    unit_id, pdu, _ = split_adu(bytes(raw_request), protocol)
    message = decode_pdu(unit_id, pdu, Direction.REQUEST)
    return message if message.function in _READS else None
