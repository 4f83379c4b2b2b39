"""The work behind one DTU link: its meters, their read schedule, downlink delivery."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from amiflow_runtime.pipeline import is_transient
from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas.events.registry import ScheduleKind

from ingest.adapters import registry_db
from ingest.config import IngestSettings
from ingest.core.admission import LinkEnd
from ingest.core.meter_requests import (
    NotPollable,
    bus_framing,
    comparable_address,
    effective_profile,
    read_requests,
)
from ingest.core.polling import DEFAULT_DAILY_AT, next_poll
from ingest.core.protocols import MeterProfile, ProfileError, StreamSplitter
from ingest.core.registry import Meter, ReadSchedule
from ingest.gateway.downlink import Downlink
from ingest.gateway.link import LINKS_CLOSED, DtuLink
from ingest.gateway.uplink import GatewaySink
from ingest.profiles import load_profile

log = logging.getLogger("ingest.gateway.polling")

DEFAULT_SCHEDULE = ReadSchedule(ScheduleKind.DAILY, DEFAULT_DAILY_AT, 1800)  # for meters registered without one
DOWNLINK_CHECK_S = 1.0
LOOP_RETRY_S = 2.0


class LinkWork:
    """Polls the meters behind one link and delivers their commands (its liveness: gateway.liveness)."""

    def __init__(self, link: DtuLink, runtime: ServiceRuntime, settings: IngestSettings, sink: GatewaySink,
                 downlink: Downlink, tz: ZoneInfo) -> None:
        self.link = link
        self.runtime = runtime
        self.settings = settings
        self.sink = sink
        self.downlink = downlink
        self.tz = tz
        self.meters: dict[str, Meter] = {}
        self.profiles: dict[str, MeterProfile] = {}  # meter id → effective profile
        self.due: dict[str, datetime] = {}

    async def load_meters(self) -> None:
        """The active meters behind the DTU (directly or via collectors) and their model profiles."""
        async with self.runtime.sessions() as session:
            meters = await registry_db.meters_behind(session, self.link.tenant_id, self.link.gateway_id)
        self.meters = {m.meter_id: m for m in meters if m.status.value == "active"}
        self.profiles = {}
        for meter in self.meters.values():
            try:
                self.profiles[meter.meter_id] = effective_profile(load_profile(meter.details.profile), meter.details)
            except ProfileError as exc:
                log.warning("meter %s: %s; it is not polled", meter.meter_id, exc)
        self.sink.know_meters(self.link.gateway_id, list(self.meters.values()))
        self.link.profiles = {comparable_address(self.meters[m].details.bus_address): p
                              for m, p in self.profiles.items()}
        if not self.link.splitter.buffered:  # Modbus has no start byte: the meters on the bus say which
            self.link.splitter = StreamSplitter(bus_framing(self.profiles.values()))
        self._schedule()

    def _schedule(self) -> None:
        now = self.runtime.clock.now()
        for meter_id in self.profiles:
            schedule = self.meters[meter_id].details.schedule or DEFAULT_SCHEDULE
            if meter_id in self.due or schedule.kind is ScheduleKind.PUSH:
                continue
            self.due[meter_id] = now if self.settings.gateway_poll_on_login else self._next(meter_id, now)
        for gone in set(self.due) - set(self.profiles):
            del self.due[gone]

    def _next(self, meter_id: str, after: datetime) -> datetime:
        schedule = self.meters[meter_id].details.schedule or DEFAULT_SCHEDULE
        return next_poll(schedule, meter_id, after, self.tz) or after

    def start(self, reads: bool = True) -> list[asyncio.Task[None]]:
        """The link's background loops; the caller cancels them when the link closes.

        ``reads=False`` (a DTU held for commissioning) sends nothing down its bus: only liveness is kept.
        """
        if self.link.gw376 or not reads:  # a concentrator reads its own meters; we only keep its link (§5)
            return []
        return [asyncio.create_task(self._kept(loop)) for loop in (self._poll_loop, self._downlink_loop)]

    async def _kept(self, loop: Callable[[], Awaitable[None]]) -> None:
        # A loop that died with a failed pass (the database away) would leave the link without polls, commands
        # or liveness until the DTU happens to log in again: it is started again for as long as the link lives.
        while not self.link.closed.is_set():
            try:
                await loop()
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("DTU %s: %s failed; starting it again", self.link.gateway_id, loop.__name__)
                else:
                    log.warning("DTU %s: %s failed (%s); starting it again", self.link.gateway_id, loop.__name__, exc)
                await self._wait(LOOP_RETRY_S)

    async def _poll_loop(self) -> None:
        refreshed = time.monotonic()
        while not self.link.closed.is_set():
            if time.monotonic() - refreshed > self.settings.gateway_refresh_meters_s:
                await self.load_meters()
                refreshed = time.monotonic()
            if not self.due:
                await self._wait(60.0)
                continue
            meter_id = min(self.due, key=self.due.__getitem__)
            delay = (self.due[meter_id] - self.runtime.clock.now()).total_seconds()
            if delay > 0:
                await self._wait(min(delay, 60.0))
                continue
            await self.read_meter(meter_id)
            self.due[meter_id] = self._next(meter_id, self.runtime.clock.now())

    async def _wait(self, seconds: float) -> None:
        # Every held link waits here each second (the downlink check): asyncio.timeout costs a timer, where
        # wait_for (Python 3.11) also makes and cancels a task, a quarter of the CPU of 10,000 idle links.
        try:
            async with asyncio.timeout(seconds):
                await self.link.closed.wait()
        except TimeoutError:
            pass

    async def read_meter(self, meter_id: str) -> None:
        """One poll: every read the profile lists; replies become events, silence is counted."""
        meter, profile = self.meters[meter_id], self.profiles[meter_id]
        try:
            requests = read_requests(meter.details, profile)
        except NotPollable:
            return
        if await self.sink.read_meter(self.link, meter, requests) is None:
            self._suspect_link()

    def _suspect_link(self) -> None:
        # Consecutive silences on a whole bus point at the DTU, not the meters: drop the link and let
        # the DTU log in again (dtu-connections.md §3).
        if self.link.misses >= self.link.policy.suspect_after_misses:
            LINKS_CLOSED.labels(LinkEnd.SILENT_BUS.value).inc()
            log.warning("DTU %s missed %d polls in a row; closing the link", self.link.gateway_id, self.link.misses)
            self.link.close()

    async def _downlink_loop(self) -> None:
        while not self.link.closed.is_set():
            read_back = await self.downlink.deliver(self.link, self.meters, self.profiles)
            for meter_id in read_back:
                await self.read_meter(meter_id)  # read back: the ack alone is no proof (§4.5)
            await self._wait(DOWNLINK_CHECK_S)

