"""Q/GDW 376.1 concentrator link management: login and heartbeat, and the master's confirm.

dtu-connections.md §5: a concentrator reads its own meters and logs in with a 376.1 frame
`68 L L 68 C A1A1 A2A2 A3 AFN SEQ DA DT CS 16`, L = (user-data length << 2) | 2. The head-end
confirms login (AFN 02 F1) and heartbeat (F3) with AFN 00 F1 and keeps the link; reading the
concentrator's stored data (AFN 0C/0D/0E) is later work, so other frames are reported, not read.
"""

from __future__ import annotations

from dataclasses import dataclass

START = 0x68
END = 0x16
HEADER = 6  # 68 L L L L 68
PROTOCOL_376_1 = 0b10  # the low two bits of L name the protocol
AFN_CONFIRM, AFN_LINK_TEST = 0x00, 0x02
DT_F1, DT_F3 = b"\x01\x00", b"\x04\x00"  # F1 login (and "confirm all"), F3 heartbeat
MASTER_CONFIRM_CONTROL = 0x0B  # DIR=0 (down), PRM=0 (secondary station answers), function 11


class Gw376Incomplete(Exception):
    """More bytes are needed to judge the frame."""


class NotGw376(ValueError):
    """The bytes are not a 376.1 frame; the reason says why."""


@dataclass(frozen=True)
class Gw376Frame:
    """One 376.1 frame's link-layer facts."""

    control: int
    area: str  # A1, the administrative area code, BCD as printed
    terminal: int  # A2, the terminal address
    afn: int
    seq: int
    data_unit: bytes  # DA DT (4 bytes) — what is being reported or asked
    raw: bytes

    @property
    def registration_id(self) -> str:
        """How the registry names a concentrator: area code and terminal address, e.g. 0200-04660."""
        return f"{self.area}-{self.terminal:05d}"

    @property
    def is_login(self) -> bool:
        return self.afn == AFN_LINK_TEST and self.data_unit[2:] == DT_F1

    @property
    def is_heartbeat(self) -> bool:
        return self.afn == AFN_LINK_TEST and self.data_unit[2:] == DT_F3


def looks_like_gw376(buffer: bytes) -> bool:
    """Does the buffer start like a 376.1 frame (68 L L 68 with the 376.1 protocol bits)?"""
    if len(buffer) < HEADER:
        return len(buffer) > 0 and buffer[0] == START
    return buffer[0] == START and buffer[5] == START and buffer[1:3] == buffer[3:5] and buffer[1] & 0b11 == 2


def parse_gw376(buffer: bytes) -> tuple[Gw376Frame, int]:
    """The frame at the start of `buffer` and its length (Gw376Incomplete / NotGw376 otherwise)."""
    if len(buffer) < HEADER:
        raise Gw376Incomplete
    if not looks_like_gw376(buffer):
        raise NotGw376(f"not a 376.1 header: {buffer[:HEADER].hex(' ')}")
    length = int.from_bytes(buffer[1:3], "little") >> 2
    total = HEADER + length + 2
    if len(buffer) < total:
        raise Gw376Incomplete
    user = buffer[HEADER:HEADER + length]
    if length < 12:
        raise NotGw376(f"376.1 user data of {length} bytes is shorter than C, A, AFN, SEQ, DA, DT")
    if sum(user) % 256 != buffer[HEADER + length] or buffer[total - 1] != END:
        raise NotGw376(f"376.1 frame with a wrong checksum or end byte: {buffer[:total].hex(' ')}")
    area = user[1:3][::-1].hex().upper()
    terminal = int.from_bytes(user[3:5], "little")
    return Gw376Frame(user[0], area, terminal, user[6], user[7], bytes(user[8:12]), bytes(buffer[:total])), total


def master_confirm(frame: Gw376Frame) -> bytes:
    """AFN 00 F1 "confirm all" for a login or heartbeat, to the same address, echoing its sequence."""
    address = frame.raw[HEADER + 1:HEADER + 6]
    seq = 0x60 | (frame.seq & 0x0F)  # FIR=FIN=1, no confirm wanted, the request's sequence number
    user = bytes([MASTER_CONFIRM_CONTROL]) + address + bytes([AFN_CONFIRM, seq]) + b"\x00\x00" + DT_F1
    length = ((len(user) << 2) | PROTOCOL_376_1).to_bytes(2, "little")
    return bytes([START]) + length + length + bytes([START]) + user + bytes([sum(user) % 256, END])
