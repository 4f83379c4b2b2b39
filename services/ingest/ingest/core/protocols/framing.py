"""Where a frame starts and ends in a byte stream: one probe per frame family (protocols.md §1.6, §4.1).

A probe looks at ``buf`` from ``start`` and answers: a whole valid frame of N bytes, a candidate
that needs N bytes to judge, a candidate that is broken (and why), or no frame start here at all.
The stream splitter and ``decode_frame`` share these probes so they judge bytes the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from amiflow_schemas.events.devices import FrameProtocol, RejectionReason

from ingest.core.protocols.bcd import sum8
from ingest.core.protocols.model import Direction

START = 0x68
END = 0x16
WAKEUP = 0xFE  # §1.1, §2.1: any number of FE may precede a 68 frame

# §1.2: 68 T A0..A6 C L data CS 16, 13 + L bytes. T families 10-19 water, 20-29 heat, 30-39 gas,
# 40-49 custom (ng-gateway), AA wildcard; anything else is not taken for a CJ/T 188 start.
CJT188_TYPES = frozenset([*range(0x10, 0x1A), *range(0x20, 0x2A), *range(0x30, 0x3A), *range(0x40, 0x4A), 0xAA])
# §2.8: functions only DL/T 645-1997 has (read 01, follow-up 02, re-read 03, write 04, address 0A,
# baud 0C, password 0F, clear demand 10); 08 (broadcast time) is shared and read as 2007.
DLT645_1997_FUNCTIONS = frozenset({0x01, 0x02, 0x03, 0x04, 0x0A, 0x0C, 0x0F, 0x10})


class ProbeKind(Enum):
    """A probe's verdict."""

    FRAME = "frame"
    NEED_MORE = "need_more"
    BAD_FRAME = "bad_frame"
    NO_FRAME = "no_frame"


@dataclass(frozen=True)
class Probe:
    """A probe's verdict on the bytes from one offset."""

    kind: ProbeKind
    protocol: FrameProtocol = FrameProtocol.UNKNOWN
    length: int = 0  # bytes from the start: the frame (FRAME, BAD_FRAME) or needed to judge (NEED_MORE)
    direction: Direction = Direction.REPLY
    reason: RejectionReason | None = None
    detail: str = ""


NO_FRAME = Probe(ProbeKind.NO_FRAME)
Prober = Callable[[bytes, int], Probe]


def _need(length: int, protocol: FrameProtocol) -> Probe:
    return Probe(ProbeKind.NEED_MORE, protocol, length)


def _direction(control: int) -> Direction:
    return Direction.REPLY if control & 0x80 else Direction.REQUEST


def _close(buf: bytes, start: int, total: int, summed: slice, protocol: FrameProtocol, direction: Direction) -> Probe:
    """Check the end byte, then the checksum, of a candidate whose length is known and present."""
    end, cs = buf[start + total - 1], buf[start + total - 2]
    if end != END:
        detail = f"missing 16 end byte: byte {total} of the {total}-byte frame is {end:02X}"
        return Probe(ProbeKind.BAD_FRAME, protocol, total, direction, RejectionReason.BAD_END_BYTE, detail)
    expected = sum8(buf[summed])
    if cs != expected:
        detail = f"wrong checksum: expected {expected:02X}, got {cs:02X}"
        return Probe(ProbeKind.BAD_FRAME, protocol, total, direction, RejectionReason.CHECKSUM_MISMATCH, detail)
    return Probe(ProbeKind.FRAME, protocol, total, direction)


def probe_cjt188(buf: bytes, start: int) -> Probe:
    """CJ/T 188-2004: 68 T A0..A6 C L DI SER data CS 16."""
    protocol = FrameProtocol.CJT188
    if buf[start] != START:
        return NO_FRAME
    if len(buf) - start < 11:
        if len(buf) - start >= 2 and buf[start + 1] not in CJT188_TYPES:
            return NO_FRAME
        return _need(11, protocol)
    if buf[start + 1] not in CJT188_TYPES:
        return NO_FRAME
    total = 13 + buf[start + 10]
    if len(buf) - start < total:
        return _need(total, protocol)
    return _close(buf, start, total, slice(start, start + total - 2), protocol, _direction(buf[start + 9]))


def probe_dlt645(buf: bytes, start: int) -> Probe:
    """DL/T 645: 68 A0..A5 68 C L data CS 16; the 1997 edition shares the frame (§2.8)."""
    if buf[start] != START:
        return NO_FRAME
    if len(buf) - start < 10:
        if len(buf) - start >= 8 and buf[start + 7] != START:
            return NO_FRAME
        return _need(10, FrameProtocol.DLT645_2007)
    if buf[start + 7] != START:
        return NO_FRAME
    control, length = buf[start + 8], buf[start + 9]
    protocol = dlt645_edition(control, length)
    total = 12 + length
    if len(buf) - start < total:
        return _need(total, protocol)
    return _close(buf, start, total, slice(start, start + total - 2), protocol, _direction(control))


def dlt645_edition(control: int, length: int) -> FrameProtocol:
    """2007 or 1997, from the function code (§2.8) and, for a C=11 read, a 2-byte DI (§5 item 13)."""
    function = control & 0x1F
    if function in DLT645_1997_FUNCTIONS or (control == 0x11 and length == 2):
        return FrameProtocol.DLT645_1997
    return FrameProtocol.DLT645_2007


def probe_mbus_long(buf: bytes, start: int) -> Probe:
    """M-Bus long frame (EN 13757-2): 68 L L 68 C A CI data CS 16; CS sums C through data (§3)."""
    protocol = FrameProtocol.MBUS
    if buf[start] != START:
        return NO_FRAME
    if len(buf) - start < 4:
        return _need(4, protocol)
    length = buf[start + 1]
    if buf[start + 2] != length or buf[start + 3] != START or length < 3:
        return NO_FRAME
    total = length + 6
    if len(buf) - start < total:
        return _need(total, protocol)
    # The C field's PRM bit (0x40) is set on frames the master sends (EN 13757-2 5.4).
    direction = Direction.REQUEST if buf[start + 4] & 0x40 else Direction.REPLY
    return _close(buf, start, total, slice(start + 4, start + total - 2), protocol, direction)


# Order = how strongly the header pins the family: two 68s at fixed places beat one.
START_68_PROBES: tuple[Prober, ...] = (probe_dlt645, probe_mbus_long, probe_cjt188)


def first_bad(buf: bytes, start: int, probes: tuple[Prober, ...]) -> Probe | None:
    """The first probe that found a broken frame at ``start``, if any."""
    return next((v for v in (probe(buf, start) for probe in probes) if v.kind is ProbeKind.BAD_FRAME), None)


def best_probe(buf: bytes, start: int, probes: tuple[Prober, ...]) -> Probe:
    """The most useful verdict of several probes: a frame, else wait, else the first break, else none.

    Waiting beats a break: a complete-but-broken reading in one family must not skip bytes that may
    still be the start of a longer frame of another family (e.g. 68 10 10 68 ... is an M-Bus header
    and also a CJ/T 188 one).
    """
    verdicts = [probe(buf, start) for probe in probes]
    for kind in (ProbeKind.FRAME, ProbeKind.NEED_MORE, ProbeKind.BAD_FRAME):
        found = [v for v in verdicts if v.kind is kind]
        if found:
            return found[0] if kind is not ProbeKind.NEED_MORE else min(found, key=lambda v: v.length)
    return NO_FRAME
