"""One stream splitter per connection: bytes as they arrive in, whole frames and rejects out (§1.6, §4.1).

It survives any number of FE bytes, garbage, frames split across reads, several frames in one
read, echoes of our own requests and bad checksums. On a broken candidate it reports the bytes and
moves on by one byte, so a real frame starting inside them is still found; it keeps an incomplete
candidate for the next read. Nothing is dropped silently: bytes outside any frame come back as
RejectedBytes, for the gateway to publish as FrameRejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from amiflow_schemas.events.devices import FrameProtocol, RejectionReason

from ingest.core.protocols.framing import (
    START,
    START_68_PROBES,
    WAKEUP,
    Probe,
    ProbeKind,
    Prober,
    best_probe,
    first_bad,
)
from ingest.core.protocols.modbus import probe_modbus_rtu, probe_modbus_tcp
from ingest.core.protocols.model import Direction

MAX_FRAME = 13 + 0xFF  # the longest frame of the families below: CJ/T 188 with L = 255 (§1.2)
MAX_REJECT = 4096  # a long run of garbage is reported in pieces of at most this many bytes


class Framing(StrEnum):
    """What a connection carries; Modbus has no start marker, so it must be declared."""

    START_68 = "start_68"  # CJ/T 188, DL/T 645 (2007 and 1997) and M-Bus long frames, mixed
    MODBUS_TCP = "modbus_tcp"
    MODBUS_RTU = "modbus_rtu"


_PROBES: dict[Framing, tuple[Prober, ...]] = {
    Framing.START_68: START_68_PROBES,
    Framing.MODBUS_TCP: (probe_modbus_tcp,),
    Framing.MODBUS_RTU: (probe_modbus_rtu,),
}


@dataclass(frozen=True)
class WireFrame:
    """A whole frame whose length, end byte and checksum are right; decode it with decode_frame."""

    protocol: FrameProtocol
    raw: bytes  # without the FE preamble
    direction: Direction  # REQUEST: master -> meter (an echo of ours, or another master's)
    preamble_fe: int = 0

    @property
    def is_request(self) -> bool:
        """True for a master -> meter frame, e.g. the echo of our own request."""
        return self.direction is Direction.REQUEST


@dataclass(frozen=True)
class RejectedBytes:
    """Bytes that are no frame: garbage between frames, or a candidate that failed its checks."""

    raw: bytes
    reason: RejectionReason
    detail: str
    protocol: FrameProtocol = FrameProtocol.UNKNOWN


class StreamSplitter:
    """Splits one connection's byte stream into frames and rejects; ``feed`` each read to it."""

    def __init__(self, framing: Framing = Framing.START_68, *, max_frame_bytes: int = MAX_FRAME) -> None:
        if max_frame_bytes < 16:
            raise ValueError("max_frame_bytes must leave room for the shortest frame (16 bytes)")
        self._framing = framing
        self._probes = _PROBES[framing]
        self._max_frame = max_frame_bytes
        self._buffer = bytearray()
        self._garbage = bytearray()
        self._reported_until = 0  # buffer bytes before this were already reported inside a reject
        self._preamble = 0

    @property
    def buffered(self) -> int:
        """Bytes held back as the start of an incomplete frame (never more than max_frame_bytes)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[WireFrame | RejectedBytes]:
        """Add one read; return the frames and rejects it completed, in stream order."""
        self._buffer += data
        buffer = bytes(self._buffer)
        out: list[WireFrame | RejectedBytes] = []
        position = 0
        while position < len(buffer):
            advanced = self._step(buffer, position, out)
            if advanced is None:
                break
            position = advanced
        del self._buffer[:position]
        self._reported_until = max(0, self._reported_until - position)
        self._flush_garbage(out)
        return out

    def flush(self) -> list[WireFrame | RejectedBytes]:
        """The connection ended: report whatever is still held back."""
        out: list[WireFrame | RejectedBytes] = []
        held = bytes(self._buffer[self._reported_until :])
        if held:
            # Nothing more will come: a candidate that is broken as far as it goes says why.
            bad = first_bad(bytes(self._buffer), self._reported_until, self._probes)
            if bad is not None and bad.reason is not None:
                out.append(RejectedBytes(held, bad.reason, bad.detail, bad.protocol))
            else:
                out.append(RejectedBytes(held, RejectionReason.TRUNCATED,
                                         f"the stream ended inside a frame ({len(held)} byte(s) held back)"))
        self._buffer.clear()
        self._reported_until = self._preamble = 0
        return out

    def _step(self, buffer: bytes, position: int, out: list[WireFrame | RejectedBytes]) -> int | None:
        """Judge the bytes at ``position``; the next position, or None to wait for more bytes."""
        if self._framing is Framing.START_68 and buffer[position] != START:
            return self._outside_frame(buffer, position, out)
        verdict = self._verdict(buffer, position)
        if verdict.kind is ProbeKind.FRAME:
            self._flush_garbage(out)
            raw = buffer[position : position + verdict.length]
            out.append(WireFrame(verdict.protocol, raw, verdict.direction, self._preamble))
            self._preamble = 0
            return position + verdict.length
        if verdict.kind is ProbeKind.NEED_MORE:
            return self._wait_or_skip(buffer, position, out)
        self._preamble = 0
        if verdict.kind is ProbeKind.BAD_FRAME:
            self._reject(buffer, position, verdict, out)
            return position + 1  # §1.6: skip one byte and rescan; never drop what may start a frame
        self._add_garbage(buffer, position, position + 1)
        return position + 1

    def _wait_or_skip(self, buffer: bytes, position: int, out: list[WireFrame | RejectedBytes]) -> int | None:
        later = self._next_frame(buffer, position + 1)
        if later is None:
            return None  # keep the candidate (and its preamble count) for the next read
        # A whole, valid frame follows inside the awaited span: the candidate was a false start.
        self._preamble = 0
        bad = first_bad(buffer, position, self._probes)
        if bad is None:
            self._add_garbage(buffer, position, later)
        else:
            self._reject(buffer, position, bad, out)
        return later

    def _reject(self, buffer: bytes, position: int, bad: Probe, out: list[WireFrame | RejectedBytes]) -> None:
        self._flush_garbage(out)
        assert bad.reason is not None
        end = position + bad.length
        out.append(RejectedBytes(buffer[position:end], bad.reason, bad.detail, bad.protocol))
        self._reported_until = max(self._reported_until, end)

    def _outside_frame(self, buffer: bytes, position: int, out: list[WireFrame | RejectedBytes]) -> int:
        # Every 68-framed family starts with 68: FE is a wake-up byte, anything else is garbage.
        if buffer[position] == WAKEUP:
            self._flush_garbage(out)
            self._preamble += 1
            return position + 1
        self._preamble = 0
        self._add_garbage(buffer, position, position + 1)
        return position + 1

    def _verdict(self, buffer: bytes, position: int) -> Probe:
        verdict = best_probe(buffer, position, self._probes)
        if verdict.kind is ProbeKind.NEED_MORE and verdict.length > self._max_frame:
            # Garbage that looks like a huge frame must not make the buffer grow without limit.
            end = min(len(buffer), position + self._max_frame)
            return Probe(ProbeKind.BAD_FRAME, verdict.protocol, end - position, verdict.direction,
                         RejectionReason.INVALID_VALUE,
                         f"declared frame length {verdict.length} exceeds the {self._max_frame}-byte limit")
        return verdict

    def _next_frame(self, buffer: bytes, start: int) -> int | None:
        position = start
        while position < len(buffer):
            if self._framing is Framing.START_68:
                position = buffer.find(START, position)
                if position < 0:
                    return None
            if best_probe(buffer, position, self._probes).kind is ProbeKind.FRAME:
                return position
            position += 1
        return None

    def _add_garbage(self, buffer: bytes, start: int, end: int) -> None:
        self._garbage += buffer[max(start, self._reported_until) : end]

    def _flush_garbage(self, out: list[WireFrame | RejectedBytes]) -> None:
        for offset in range(0, len(self._garbage), MAX_REJECT):
            piece = bytes(self._garbage[offset : offset + MAX_REJECT])
            out.append(RejectedBytes(piece, RejectionReason.UNKNOWN_PROTOCOL,
                                     f"{len(piece)} byte(s) outside any frame"))
        self._garbage.clear()
