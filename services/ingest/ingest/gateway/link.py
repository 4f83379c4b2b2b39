"""One DTU connection: the byte stream, the bus it fronts, and the one request in flight on it.

The half-duplex bus behind a DTU answers one master request at a time (dtu-connections.md §3), so
requests take the bus lock, wait a few seconds for the matching reply and retry a little. Everything
else that arrives — replies after their timeout, store-and-forward backlogs, meters that push —
is unsolicited uplink and is handled, never discarded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from amiflow_schemas.events.devices import FrameProtocol, RejectionReason
from prometheus_client import Counter

from ingest.core.admission import LinkEnd, NoiseBudget
from ingest.core.dtu_login import is_heartbeat
from ingest.core.gw376 import Gw376Frame, Gw376Incomplete, NotGw376, master_confirm, parse_gw376
from ingest.core.meter_requests import comparable_address
from ingest.core.polling import BusPolicy
from ingest.core.protocols import (
    DecodedFrame,
    FrameError,
    MeterProfile,
    RejectedBytes,
    StreamSplitter,
    WireFrame,
    decode_frame,
)
from ingest.core.registry import Gateway

log = logging.getLogger("ingest.gateway.link")

ReplyMatch = Callable[[DecodedFrame], bool]
# A frame, or what builds it as it goes out: a clock write that waited for the bus must not set the
# meter's clock to the moment it started waiting.
Outgoing = bytes | Callable[[], bytes]
MAX_GW376_HELD = 65536  # a 376.1 frame is at most 16 Ki user bytes; more held back is garbage
LINKS_CLOSED = Counter("amiflow_gateway_links_closed_total", "Logged-in links the gateway closed itself", ["reason"])


class NoValidFrame(Exception):
    """The link sent more bytes than its allowance without one valid frame among them."""


@dataclass(frozen=True)
class Rejection:
    """Bytes that could not be used, with the reason, for FrameRejected."""

    raw: bytes
    reason: RejectionReason
    detail: str
    protocol: FrameProtocol = FrameProtocol.UNKNOWN
    address: str | None = None


class LinkSink:
    """What a link hands upward: decoded frames it did not wait for, and rejections."""

    async def uplink(self, link: DtuLink, frame: DecodedFrame) -> None:
        raise NotImplementedError

    async def rejected(self, link: DtuLink, rejection: Rejection) -> None:
        raise NotImplementedError


@dataclass
class DtuLink:
    """A logged-in DTU: reads frames, serialises requests on its bus, keeps its own counters."""

    gateway: Gateway
    remote: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sink: LinkSink
    policy: BusPolicy
    heartbeat: bytes | None
    idle_timeout_s: float
    connected_at: datetime
    splitter: StreamSplitter = field(default_factory=StreamSplitter)
    profiles: dict[str, MeterProfile] = field(default_factory=dict)  # bus address → the meter's model
    last_seen: float = field(default_factory=time.monotonic)
    frames_in: int = 0
    misses: int = 0
    _bus: asyncio.Lock = field(default_factory=asyncio.Lock)
    _waiting: tuple[ReplyMatch, asyncio.Future[DecodedFrame]] | None = None
    _request: bytes | None = None  # Modbus replies do not repeat the first register: decode against this
    gw376: bool = False  # a Q/GDW 376.1 concentrator: link frames are confirmed, the rest reported
    _gw376_buffer: bytes = b""
    _last_request_at: float = 0.0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    noise: NoiseBudget = field(default_factory=lambda: NoiseBudget(65536))

    @property
    def gateway_id(self) -> str:
        return self.gateway.gateway_id

    @property
    def tenant_id(self) -> str:
        return self.gateway.tenant_id

    async def serve(self, first_bytes: bytes = b"") -> None:
        """Read until the peer goes away or stays silent past the idle timeout."""
        data = first_bytes
        try:
            if first_bytes:
                await self._take(first_bytes)
            while True:
                async with asyncio.timeout(self.idle_timeout_s):  # a timer; wait_for (3.11) adds a task per read
                    data = await self.reader.read(4096)
                if not data:
                    return
                await self._take(data)
        except TimeoutError:
            LINKS_CLOSED.labels(LinkEnd.IDLE.value).inc()
            log.info("DTU %s idle for %.0f s; closing", self.gateway_id, self.idle_timeout_s)
        except NoValidFrame:
            await self._cut_off(data)
        except (ConnectionError, OSError) as exc:
            log.info("DTU %s connection lost: %s", self.gateway_id, exc)
        finally:
            self.close()
            for item in self.splitter.flush():  # a frame cut off by the disconnect is reported, not lost
                await self._item(item)

    async def _take(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        if self.gw376:
            await self._take_gw376(data)
        elif not is_heartbeat(data, self.heartbeat, self._waiting is not None):
            for item in self.splitter.feed(data):
                await self._item(item)
        if self.noise.run > self.noise.limit:
            raise NoValidFrame

    async def _cut_off(self, last_read: bytes) -> None:
        # Everything up to here was reported piece by piece; this says why the link ends.
        LINKS_CLOSED.labels(LinkEnd.NO_VALID_FRAME.value).inc()
        detail = (f"link from {self.remote} cut off: {self.noise.run} bytes without a valid frame "
                  f"(INGEST_GATEWAY_MAX_BYTES_WITHOUT_FRAME={self.noise.limit})")
        log.warning("DTU %s %s", self.gateway_id, detail,
                    extra={"gateway_event": "GatewayLinkCutOff", "reason": LinkEnd.NO_VALID_FRAME.value})
        await self.sink.rejected(self, Rejection(last_read or b"\x00", RejectionReason.UNKNOWN_PROTOCOL, detail))

    async def _take_gw376(self, data: bytes) -> None:
        buffer = self._gw376_buffer + data
        while buffer:
            try:
                frame, used = parse_gw376(buffer)
            except Gw376Incomplete:
                break
            except NotGw376 as exc:  # resync on the next start byte; what is skipped is reported
                skip = buffer.find(b"\x68", 1)
                skip = len(buffer) if skip < 0 else skip
                self.noise.spend(skip)
                await self.sink.rejected(self, Rejection(buffer[:skip], RejectionReason.UNKNOWN_PROTOCOL, str(exc)))
                buffer = buffer[skip:]
                continue
            buffer = buffer[used:]
            self.noise.frame()
            await self.concentrator_frame(frame)
        self._gw376_buffer = buffer[-MAX_GW376_HELD:]

    async def concentrator_frame(self, frame: Gw376Frame) -> None:
        """Confirm login and heartbeat (§5); report the rest until concentrator data reading exists."""
        self.frames_in += 1
        if frame.is_login or frame.is_heartbeat:
            self.writer.write(master_confirm(frame))
            await self.writer.drain()
            return
        await self.sink.rejected(self, Rejection(frame.raw, RejectionReason.UNSUPPORTED_DATA_ID,
                                                 f"376.1 AFN {frame.afn:02X} from concentrator {frame.registration_id} "
                                                 "is not read yet (only login and heartbeat are handled)"))

    async def _item(self, item: WireFrame | RejectedBytes) -> None:
        if isinstance(item, RejectedBytes):
            self.noise.spend(len(item.raw))
            await self.sink.rejected(self, Rejection(item.raw, item.reason, item.detail, item.protocol))
            return
        self.noise.frame()
        if not item.is_request:  # a request is the echo of ours (or another master's): not meter data
            await self._frame(item.raw)

    def _decode(self, raw: bytes) -> DecodedFrame:
        # Decode generically to learn the address, then again with that meter's model profile when it
        # has one: vendor quirks (unit codes, status bits, odd reply shapes) live in profiles (§4.6).
        try:
            frame = decode_frame(raw, request=self._request)
        except FrameError as exc:
            profile = self.profiles.get(comparable_address(exc.address or ""))
            if profile is None:
                raise
            return decode_frame(raw, profile, request=self._request)
        profile = self.profiles.get(comparable_address(frame.address))
        return frame if profile is None else decode_frame(raw, profile, request=self._request)

    async def _frame(self, raw: bytes) -> None:
        try:
            frame = self._decode(raw)
        except FrameError as exc:
            await self.sink.rejected(self, Rejection(raw, exc.reason, str(exc), exc.protocol, exc.address))
            return
        self.frames_in += 1
        waiting = self._waiting
        if waiting is not None and not waiting[1].done() and waiting[0](frame):
            waiting[1].set_result(frame)
            return
        await self.sink.uplink(self, frame)

    async def request(self, frame: Outgoing, expect: ReplyMatch) -> DecodedFrame | None:
        """Send on the bus and wait for the matching reply, retrying; None when the meter stays silent."""
        async with self._bus:
            for _attempt in range(1 + self.policy.retries):
                if self.closed.is_set():
                    return None
                await self._pace()
                reply = await self._exchange(frame, expect)
                if reply is not None:
                    self.misses = 0
                    return reply
            self.misses += 1
            return None

    async def _pace(self) -> None:
        gap = self.policy.min_gap_s - (time.monotonic() - self._last_request_at)
        if gap > 0:
            await asyncio.sleep(gap)

    async def _exchange(self, frame: Outgoing, expect: ReplyMatch) -> DecodedFrame | None:
        future: asyncio.Future[DecodedFrame] = asyncio.get_running_loop().create_future()
        raw = frame() if callable(frame) else frame
        self._waiting = (expect, future)
        self._request = raw
        try:
            self.writer.write(raw)
            await self.writer.drain()
            self._last_request_at = time.monotonic()
            return await asyncio.wait_for(future, self.policy.reply_timeout_s)
        except (TimeoutError, ConnectionError, OSError):
            return None
        finally:
            self._waiting = None

    async def send_only(self, frame: Outgoing) -> bool:
        """Send a frame that gets no reply (broadcast time sync) under the bus lock; False if it could not go."""
        async with self._bus:
            if self.closed.is_set():
                return False
            await self._pace()
            try:
                self.writer.write(frame() if callable(frame) else frame)
                await self.writer.drain()
            except (ConnectionError, OSError):
                return False
            self._last_request_at = time.monotonic()
            return True

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        if not self.closed.is_set():
            self.closed.set()
            self.writer.close()


def replies_to(address: str, control_reply: Callable[[int], bool]) -> ReplyMatch:
    """A reply match on the meter address and the control code of the answer."""
    return lambda frame: frame.address == address and control_reply(frame.control)

