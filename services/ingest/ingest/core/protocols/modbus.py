"""Modbus RTU/TCP framing and PDUs through pymodbus, sans I/O (protocols.md §3, §7).

This is the only module that touches pymodbus internals (``DecodePDU``, ``lookupPduClass``,
``calculateRtuFrameSize``, ``FramerRTU.compute_CRC``, ``buildFrame``). Their names change between
minor releases (``processIncomingFrame`` is gone in 3.16), so requirements pin pymodbus==3.16.1 and
an upgrade is checked here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from amiflow_schemas.events.devices import FrameProtocol, RejectionReason
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest

from ingest.core.protocols.errors import FrameError
from ingest.core.protocols.framing import NO_FRAME, Probe, ProbeKind
from ingest.core.protocols.model import Direction

_REPLIES = DecodePDU(is_server=False)  # decodes what a meter (server) sends
_REQUESTS = DecodePDU(is_server=True)  # decodes what the head-end (client) sends
_DECODERS = ((_REPLIES, Direction.REPLY), (_REQUESTS, Direction.REQUEST))
MAX_RTU = 256  # Modbus over serial line 2.5.1: an RTU ADU is at most 256 bytes
MAX_UNIT = 247  # 0 is broadcast (requests only), 248..255 are reserved
MBAP = 7  # transaction id, protocol id, length, unit id
FUNCTIONS = {1: "read coils", 2: "read discrete inputs", 3: "read holding registers", 4: "read input registers",
             5: "write single coil", 6: "write single register", 15: "write multiple coils",
             16: "write multiple registers"}
# Modbus application protocol 1.1b3 §7, exception codes.
EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "server device failure",
              5: "acknowledge", 6: "server device busy", 8: "memory parity error", 10: "gateway path unavailable",
              11: "gateway target device failed to respond"}


@dataclass(frozen=True)
class ModbusMessage:
    """A decoded Modbus PDU."""

    unit_id: int
    function: int
    direction: Direction
    exception_code: int | None = None
    address: int | None = None  # first register of a request
    count: int | None = None  # registers a request asks for
    registers: tuple[int, ...] = ()  # a register read reply's values


def crc16(frame: bytes) -> bytes:
    """The Modbus RTU CRC of ``frame`` in wire order (low byte first)."""
    return FramerRTU.compute_CRC(frame).to_bytes(2, "big")  # compute_CRC returns it byte-swapped


def _rtu_size(decoder: DecodePDU, window: bytes, direction: Direction) -> int | None:
    """The ADU size pymodbus expects for this header; 0 = not known yet; None = no such PDU."""
    try:
        pdu_class = decoder.lookupPduClass(window)
        if pdu_class is None or (pdu_class is ExceptionResponse and direction is Direction.REQUEST):
            return None
        return int(pdu_class.calculateRtuFrameSize(window))
    except Exception:  # pymodbus raises assorted errors on short or odd headers: treat as "no PDU"
        return None


def _decodes(decoder: DecodePDU, pdu: bytes) -> bool:
    """True when the PDU decodes; this is what tells an RTU request from a reply of the same length."""
    if decoder is _REPLIES and len(pdu) > 1 and pdu[0] in (3, 4) and pdu[1] % 2:
        return False  # a register reply's byte count is 2 x N (application protocol 6.3); pymodbus allows odd
    try:
        return decoder.decode(pdu) is not None
    except Exception:  # decode() catches its own errors; anything else also means "does not decode"
        return False


def probe_modbus_rtu(buf: bytes, start: int) -> Probe:
    """An RTU ADU (unit, function, data, CRC) at ``start``: tried as a reply, then as a request."""
    window = bytes(buf[start : start + MAX_RTU])
    if window[0] > MAX_UNIT:
        return NO_FRAME
    if len(window) < 4:
        return Probe(ProbeKind.NEED_MORE, FrameProtocol.MODBUS_RTU, 4)
    needs = []
    for decoder, direction in _DECODERS:
        size = _rtu_size(decoder, window, direction)
        if size is None or size > MAX_RTU or (size and size < 4):
            continue
        if size == 0 or size > len(window):
            needs.append(size or len(window) + 1)
        elif crc16(window[: size - 2]) == window[size - 2 : size] and _decodes(decoder, window[1 : size - 2]):
            return Probe(ProbeKind.FRAME, FrameProtocol.MODBUS_RTU, size, direction)
    return Probe(ProbeKind.NEED_MORE, FrameProtocol.MODBUS_RTU, min(needs)) if needs else NO_FRAME


def probe_modbus_tcp(buf: bytes, start: int) -> Probe:
    """A Modbus TCP ADU (MBAP header + PDU) at ``start``."""
    protocol = FrameProtocol.MODBUS_TCP
    head = bytes(buf[start : start + MBAP + 1])
    if len(head) >= 4 and head[2:4] != b"\x00\x00":  # the protocol id is always 0000
        return NO_FRAME
    if len(head) < MBAP + 1:
        return Probe(ProbeKind.NEED_MORE, protocol, MBAP + 1)
    length = int.from_bytes(head[4:6], "big")
    if not 2 <= length <= 254:  # unit id + function code, at most 253 PDU bytes
        return NO_FRAME
    total = 6 + length
    if len(buf) - start < total:
        return Probe(ProbeKind.NEED_MORE, protocol, total)
    adu = bytes(buf[start + 6 : start + total])  # unit id + PDU, laid out like an RTU frame minus CRC
    for decoder, direction in _DECODERS:
        if _rtu_size(decoder, adu + b"\x00\x00", direction) == len(adu) + 2 and _decodes(decoder, adu[1:]):
            return Probe(ProbeKind.FRAME, protocol, total, direction)
    return Probe(ProbeKind.BAD_FRAME, protocol, total, Direction.REPLY, RejectionReason.INVALID_VALUE,
                 f"MBAP length {length} does not fit function {adu[1]:02X}")


def decode_pdu(unit_id: int, pdu: bytes, direction: Direction) -> ModbusMessage:
    """Decode a PDU (function code + data) sent in ``direction``."""
    decoder = _REPLIES if direction is Direction.REPLY else _REQUESTS
    try:
        message: ModbusPDU | None = decoder.decode(pdu)
    except Exception:  # decode() already catches most of its own errors; keep the contract anyway
        message = None
    if message is None:
        raise FrameError(RejectionReason.INVALID_VALUE, f"function {pdu[0]:02X}: PDU {pdu.hex()} does not decode")
    if isinstance(message, ExceptionResponse):
        return ModbusMessage(unit_id, pdu[0] & 0x7F, direction, exception_code=int(message.exception_code))
    registers = tuple(int(r) for r in (message.registers or ()))
    if direction is Direction.REQUEST:
        return ModbusMessage(unit_id, pdu[0], direction, address=int(message.address), count=int(message.count))
    return ModbusMessage(unit_id, pdu[0], direction, registers=registers)


def read_registers_request(
    unit_id: int, function: int, address: int, count: int, *, tcp: bool = False, transaction_id: int = 0
) -> bytes:
    """A read-holding (03) or read-input (04) registers request, as an RTU or TCP ADU."""
    request_class = {3: ReadHoldingRegistersRequest, 4: ReadInputRegistersRequest}.get(function)
    if request_class is None:
        raise ValueError(f"function {function} is not a register read (3 or 4)")
    if not (0 <= unit_id <= MAX_UNIT and 0 <= address <= 0xFFFF and 1 <= count <= 125):
        raise ValueError("unit id 0..247, address 0..65535 and count 1..125 are required")
    message = request_class(dev_id=unit_id, transaction_id=transaction_id, address=address, count=count)
    framer = FramerSocket(_REQUESTS) if tcp else FramerRTU(_REQUESTS)
    return bytes(framer.buildFrame(message))
