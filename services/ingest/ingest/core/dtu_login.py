"""How a DTU says who it is and that it is alive (../shared/specs/dtu-connections.md §0-2).

Identity arrives in-band as the first bytes of a connection, in a format configured per listening
port or DTU model — never guessed from the peer address. Heartbeats are opaque configured bytes,
recognised only as a whole read while no request is outstanding, never stripped from inside data.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from enum import StrEnum


class LoginFormat(StrEnum):
    """Registration packet formats the gateway understands."""

    ASCII_ID = "ascii-id"  # custom / IMEI / ICCID / SN as printable ASCII, optionally ended by CR/LF
    DDP = "ddp"  # Hongdian / Four-Faith: 7B 01 00 16 + 11 ASCII id + 4 IP + 2 port + 7B
    INHAND = "inhand"  # InHand InDTU: AA 01 + 11 ASCII id + 0D
    MAC = "mac"  # Ethernet serial servers: 6 binary bytes, shown as 9C-A5-25-CD-00-DB


class LoginIncomplete(Exception):
    """More bytes are needed before the registration packet can be judged."""


class LoginRefused(ValueError):
    """The first bytes are not a registration packet of the configured format."""


@dataclass(frozen=True)
class Login:
    """A parsed registration: the DTU's id and how many bytes of the stream it used."""

    registration_id: str
    consumed: int
    packet: bytes = b""  # the registration packet without its line end, kept when the login is refused


_PRINTABLE = set(string.ascii_letters + string.digits + "-_.:")
MAX_ASCII_ID = 40  # USR custom registration packets are at most 40 bytes (§1)
_DDP_LENGTH = 22
_INHAND_LENGTH = 14


def parse_login(fmt: LoginFormat, buffer: bytes, ascii_length: int | None = None) -> Login:
    """Read the registration packet at the start of `buffer` (LoginIncomplete if it is not all there)."""
    if fmt is LoginFormat.DDP:
        return _fixed(buffer, _DDP_LENGTH, b"\x7b\x01\x00\x16", b"\x7b", slice(4, 15))
    if fmt is LoginFormat.INHAND:
        return _fixed(buffer, _INHAND_LENGTH, b"\xaa\x01", b"\x0d", slice(2, 13))
    if fmt is LoginFormat.MAC:
        if len(buffer) < 6:
            raise LoginIncomplete
        return Login("-".join(f"{b:02X}" for b in buffer[:6]), 6, buffer[:6])
    return _ascii(buffer, ascii_length)


def _fixed(buffer: bytes, length: int, head: bytes, tail: bytes, id_at: slice) -> Login:
    if len(buffer) < length:
        if not head.startswith(buffer[: len(head)]):
            raise LoginRefused(f"expected a registration packet starting {head.hex(' ')}, got {buffer[:8].hex(' ')}")
        raise LoginIncomplete
    packet = buffer[:length]
    if not packet.startswith(head) or not packet.endswith(tail):
        raise LoginRefused(f"not a {length}-byte registration packet: {packet.hex(' ')}")
    identity = packet[id_at]
    if not all(chr(b) in _PRINTABLE for b in identity):
        raise LoginRefused(f"registration id is not printable: {identity.hex(' ')}")
    return Login(identity.decode(), length, packet)


def _ascii(buffer: bytes, fixed_length: int | None) -> Login:
    if fixed_length is not None:  # IMEI (15) or ICCID (20) sent bare: parse by length, not read boundary
        if len(buffer) < fixed_length:
            raise LoginIncomplete
        return _ascii_id(buffer[:fixed_length], fixed_length)
    end = re.search(rb"[\r\n]", buffer[: MAX_ASCII_ID + 2])
    if end is None:
        if len(buffer) > MAX_ASCII_ID:
            raise LoginRefused(f"no line end within {MAX_ASCII_ID} bytes of registration")
        raise LoginIncomplete
    consumed = end.end()
    if buffer[end.start():end.start() + 2] == b"\r\n":
        consumed = end.start() + 2
    return _ascii_id(buffer[: end.start()], consumed)


def _ascii_id(raw: bytes, consumed: int) -> Login:
    text = raw.decode("ascii", errors="replace")
    if not text or not all(c in _PRINTABLE for c in text):
        raise LoginRefused(f"registration id is not a printable id: {raw[:MAX_ASCII_ID].hex(' ')}")
    return Login(text, consumed, raw)


def is_heartbeat(read: bytes, heartbeat: bytes | None, request_outstanding: bool) -> bool:
    """A heartbeat is exactly the configured bytes, alone in a read, while no reply is awaited (§2)."""
    return heartbeat is not None and not request_outstanding and read == heartbeat
