"""A virtual DTU: a cellular modem that tunnels one meter bus to the head-end over TCP.

It logs in with its registration line (dtu-connections.md §1), then passes each request to the bus
and the addressed meter's reply back, one at a time as the half-duplex line allows (§3). When the
link drops, what the meters said is kept in a store-and-forward backlog and sent, oldest first,
right after the next login. Heartbeats go up only when the link is idle (§2); after the head-end
closes the link, the DTU reconnects with a growing, jittered backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ingest.core.protocols import StreamSplitter, WireFrame
from ingest.simulator.bus import MeterBus, cjt188_reading
from ingest.simulator.ledger import Delivery, Ledger
from ingest.simulator.models import Cjt188Meter, SimMeter
from ingest.simulator.replies import Reply, ReplyKind

log = logging.getLogger("ingest.simulator.dtu")

Clock = Callable[[], datetime]
COMMANDS = frozenset({ReplyKind.VALVE, ReplyKind.RELAY, ReplyKind.TIME_SET})


def dtu_tls(trust: str, cert: str | None = None, key: str | None = None, *,
            check_hostname: bool = True) -> ssl.SSLContext:
    """A DTU's TLS context: trusting only ``trust`` (a CA, or the gateway's own certificate), with an
    optional client certificate for mutual TLS."""
    context = ssl.create_default_context(cafile=trust)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The trusted file may hold the gateway's own (CA-issued) certificate rather than its CA: pinning.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = check_hostname
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


@dataclass(frozen=True)
class DtuBehaviour:
    """How a DTU and its line behave; timings in seconds."""

    bus_delay_s: tuple[float, float] = (0.02, 0.15)  # meter turnaround plus serial packing
    offline_rate: float = 0.0  # chance per answered request that the link drops before the reply goes up
    offline_s: tuple[float, float] = (5.0, 30.0)  # how long such an offline spell lasts
    heartbeat_s: float = 0.0  # 0: no heartbeats
    heartbeat: bytes = b"www.usr.cn"  # the USR factory heartbeat content (§2)
    login_end: bytes = b"\r\n"
    push_interval_s: float = 3600.0
    backoff_s: tuple[float, float] = (1.0, 60.0)  # first and longest wait before reconnecting
    stable_after_s: float = 30.0  # a link that lasted this long starts the backoff over


@dataclass
class DtuStats:
    logins: int = 0
    requests_answered: int = 0
    commands_obeyed: int = 0
    drops: int = 0
    pushes: int = 0
    backlog_sent: int = 0
    heartbeats: int = 0


@dataclass(frozen=True)
class Held:
    """A reply waiting in the backlog."""

    reply: Reply
    pushed: bool


class VirtualDtu:
    """One DTU with its meters; ``run`` keeps it connected until ``stop``."""

    def __init__(self, dtu_id: str, registration_id: str, meters: Sequence[SimMeter], *, behaviour: DtuBehaviour,
                 ledger: Ledger, clock: Clock, seed: str) -> None:
        self.dtu_id = dtu_id
        self.registration_id = registration_id
        self.meters = list(meters)
        self.bus = MeterBus(self.meters)
        self.behaviour = behaviour
        self.ledger = ledger
        self.stats = DtuStats()
        self.backlog: deque[Held] = deque()
        self.online = asyncio.Event()
        self._clock = clock
        self._seed = seed
        self._rng = random.Random(seed)
        self._scripted_drops: deque[float] = deque()
        self._stopping = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._uplink = asyncio.Lock()  # one sender on the link at a time: replies, backlog, pushes, heartbeats
        self._last_traffic = 0.0
        self._busy = False

    def drop_next_poll(self, offline_s: float = 1.0) -> None:
        """Script a drop: the next answered request's reply goes to the backlog, the link down for offline_s."""
        self._scripted_drops.append(offline_s)

    async def run(self, host: str, port: int, tls: ssl.SSLContext | None = None,
                  server_hostname: str | None = None) -> None:
        """Connect (over TLS with a context), serve, and reconnect after every drop or close, until stopped."""
        self._stopping.clear()
        pushes = asyncio.create_task(self._push_loop())
        loop = asyncio.get_running_loop()
        backoff = self.behaviour.backoff_s[0]
        try:
            while not self._stopping.is_set():
                started = loop.time()
                offline = await self._connect_and_serve(host, port, tls, server_hostname)
                if self._stopping.is_set():
                    break
                if offline is not None:  # our own offline spell: its own length, and a fresh backoff
                    delay, backoff = offline, self.behaviour.backoff_s[0]
                else:
                    delay, backoff = self._backoff(backoff, loop.time() - started)
                await self._pause(delay)
        finally:
            pushes.cancel()
            await asyncio.gather(pushes, return_exceptions=True)

    async def stop(self) -> None:
        """Leave the link and stop reconnecting."""
        self._stopping.set()
        if self._writer is not None:
            self._writer.close()

    def _backoff(self, backoff: float, lasted: float) -> tuple[float, float]:
        first, longest = self.behaviour.backoff_s
        if lasted >= self.behaviour.stable_after_s:
            backoff = first
        # Jitter, so that DTUs the head-end dropped together do not all come back in the same instant.
        return backoff * self._rng.uniform(1.0, 1.5), min(backoff * 2, longest)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), max(seconds, 0.0))
        except TimeoutError:
            pass

    async def _connect_and_serve(self, host: str, port: int, tls: ssl.SSLContext | None,
                                 server_hostname: str | None) -> float | None:
        """One connection; the offline spell when we dropped it ourselves, else None."""
        try:
            if tls is None:
                reader, writer = await asyncio.open_connection(host, port)
            else:
                reader, writer = await asyncio.open_connection(host, port, ssl=tls,
                                                               server_hostname=server_hostname or host)
        except OSError as exc:  # ssl.SSLError too: a refused handshake is retried like a refused connection
            log.debug("DTU %s cannot reach %s:%d: %s", self.dtu_id, host, port, exc)
            return None
        try:
            return await self._session(reader, writer)
        except (ConnectionError, OSError) as exc:
            log.info("DTU %s link lost: %s", self.dtu_id, exc)
            return None
        finally:
            self.online.clear()
            self._writer = None
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float | None:
        async with self._uplink:
            writer.write(self.registration_id.encode("ascii") + self.behaviour.login_end)
            await writer.drain()
            self._writer = writer
            self.online.set()
            self.stats.logins += 1
            await self._send_backlog(writer)  # store-and-forward: right after the registration line
        self._last_traffic = asyncio.get_running_loop().time()
        heartbeats = asyncio.create_task(self._heartbeats(writer)) if self.behaviour.heartbeat_s > 0 else None
        try:
            return await self._serve(reader, writer)
        finally:
            if heartbeats is not None:
                heartbeats.cancel()
                await asyncio.gather(heartbeats, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float | None:
        splitter = StreamSplitter()
        while True:
            data = await reader.read(4096)
            if not data:
                return None  # the head-end closed the link
            self._last_traffic = asyncio.get_running_loop().time()
            for item in splitter.feed(data):
                if isinstance(item, WireFrame) and item.is_request:
                    offline = await self._on_request(item.raw, writer)
                    if offline is not None:
                        return offline

    async def _on_request(self, raw: bytes, writer: asyncio.StreamWriter) -> float | None:
        self._busy = True
        try:
            reply = self.bus.answer(raw, self._clock())
            if reply is None:
                return None
            await asyncio.sleep(self._rng.uniform(*self.behaviour.bus_delay_s))
            self.stats.requests_answered += 1
            if reply.kind in COMMANDS:
                self.stats.commands_obeyed += 1
            offline = self._drop_now()
            if offline is None:
                await self._send(writer, Held(reply, pushed=False))
                return None
            # The meter did answer on its bus; the modem lost its link before passing the reply up.
            self.backlog.append(Held(reply, pushed=False))
            self.stats.drops += 1
            self.online.clear()
            writer.transport.abort()
            log.info("DTU %s dropped its link mid-poll; offline for %.1f s with %d held", self.dtu_id, offline,
                     len(self.backlog))
            return offline
        finally:
            self._busy = False

    def _drop_now(self) -> float | None:
        if self._scripted_drops:
            return self._scripted_drops.popleft()
        rate = self.behaviour.offline_rate
        if rate > 0 and self._rng.random() < rate:
            return self._rng.uniform(*self.behaviour.offline_s)
        return None

    async def _send(self, writer: asyncio.StreamWriter, held: Held) -> None:
        async with self._uplink:
            if self._writer is not writer or writer.is_closing():
                self.backlog.append(held)
                return
            try:
                await self._write(writer, held, backlogged=False)
            except (ConnectionError, OSError):
                self.backlog.append(held)  # unconfirmed: sent again after the next login

    async def _send_backlog(self, writer: asyncio.StreamWriter) -> None:
        while self.backlog:
            held = self.backlog[0]
            await self._write(writer, held, backlogged=True)
            self.backlog.popleft()  # only once written: nothing held is lost when the link fails meanwhile
            self.stats.backlog_sent += 1

    async def _write(self, writer: asyncio.StreamWriter, held: Held, *, backlogged: bool) -> None:
        writer.write(held.reply.frame)
        await writer.drain()
        self._last_traffic = asyncio.get_running_loop().time()
        self.ledger.record(Delivery.of(held.reply, self.dtu_id, self._clock(), backlogged=backlogged,
                                       pushed=held.pushed))

    async def _heartbeats(self, writer: asyncio.StreamWriter) -> None:
        every = self.behaviour.heartbeat_s
        loop = asyncio.get_running_loop()
        try:
            while True:
                idle = loop.time() - self._last_traffic
                if idle >= every and not self._busy:
                    async with self._uplink:
                        writer.write(self.behaviour.heartbeat)
                        await writer.drain()
                    self._last_traffic = loop.time()
                    self.stats.heartbeats += 1
                    idle = 0.0
                await asyncio.sleep(max(every - idle, 0.01))
        except (ConnectionError, OSError):
            return

    async def _push_loop(self) -> None:
        pushers = [m for m in self.meters if m.spec.traits.pushes and isinstance(m, Cjt188Meter)]
        if not pushers:
            return
        loop = asyncio.get_running_loop()
        interval = self.behaviour.push_interval_s
        # Each meter has its own phase in the interval, from the seed, so pushes do not bunch up.
        due = {m.meter_id: loop.time() + random.Random(f"{self._seed}:{m.meter_id}").uniform(0, interval)
               for m in pushers}
        while not self._stopping.is_set():
            meter = min(pushers, key=lambda m: due[m.meter_id])
            await self._pause(due[meter.meter_id] - loop.time())
            if self._stopping.is_set():
                return
            due[meter.meter_id] += interval
            self.stats.pushes += 1
            held = Held(cjt188_reading(meter, self._clock()), pushed=True)
            writer = self._writer
            if writer is None or not self.online.is_set():
                self.backlog.append(held)  # offline: store and forward like any other uplink
            else:
                await self._send(writer, held)
