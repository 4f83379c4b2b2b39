"""The connection rows of the links one gateway process holds: refreshed together, disconnects written together.

A transaction per link does not scale with the fleet: at 10,000 links a last-seen write per link every
30 s was 333 commits a second, and when a cell went down its 10,000 disconnect writes queued for the
database pool past its timeout, leaving those DTUs shown online. Here each kind of write is one
statement per batch of links.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime

from amiflow_runtime.pipeline import is_transient
from amiflow_runtime.service import ServiceRuntime
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.adapters import gateway_db
from ingest.adapters.gateway_db import LinkRecord
from ingest.gateway.link import DtuLink

log = logging.getLogger("ingest.gateway.liveness")

SEEN_RECORD_S = 30.0
BATCH = 1000  # links per statement: short transactions however large the fleet
RETRY_S = 2.0

Mark = Callable[[AsyncSession, Sequence[LinkRecord], str], Awaitable[None]]


class Liveness:
    """Writes the last-seen time and counters of every held link, and each link's disconnect soon after it."""

    def __init__(self, runtime: ServiceRuntime, instance: str) -> None:
        self.runtime = runtime
        self.instance = instance
        self._closed: list[LinkRecord] = []
        self._wake = asyncio.Event()

    def disconnected(self, link: DtuLink) -> None:
        """Queue a closed link's disconnect; it is written at once, with any others that close meanwhile."""
        self._closed.append(_record(link, self.runtime.clock.now()))
        self._wake.set()

    async def run(self, links: Callable[[], Iterable[DtuLink]]) -> None:
        """Write disconnects as they come and every held link each SEEN_RECORD_S, until cancelled."""
        refresh_at = time.monotonic() + SEEN_RECORD_S
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), max(refresh_at - time.monotonic(), 0.0))
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush_disconnects()
                if time.monotonic() >= refresh_at:
                    refresh_at = time.monotonic() + SEEN_RECORD_S
                    now = self.runtime.clock.now()
                    await self._write(gateway_db.mark_many_seen,
                                      [_record(link, now) for link in links() if not link.closed.is_set()])
            except Exception as exc:  # disconnects stay queued; held links are all written again next round
                if is_transient(exc):
                    log.warning("could not record the DTU links' liveness: %s", exc)
                else:
                    log.exception("could not record the DTU links' liveness")
                await asyncio.sleep(RETRY_S)
                if self._closed:
                    self._wake.set()

    async def flush_on_stop(self) -> None:
        """Write the disconnects of the links the stopping gateway closed; a failure is logged, not raised."""
        try:
            await self.flush_disconnects()
        except Exception as exc:  # the rows stay online until each DTU's next login rewrites them
            log.warning("could not record the disconnects of %d DTU links on stopping: %s", len(self._closed), exc)

    async def flush_disconnects(self) -> None:
        """Write every queued disconnect."""
        while self._closed:
            batch = self._closed[:BATCH]
            await self._write(gateway_db.mark_many_offline, batch)
            del self._closed[:len(batch)]

    async def _write(self, mark: Mark, records: list[LinkRecord]) -> None:
        for first in range(0, len(records), BATCH):
            async with self.runtime.sessions() as session, session.begin():
                await mark(session, records[first:first + BATCH], self.instance)


def _record(link: DtuLink, at: datetime) -> LinkRecord:
    return LinkRecord(link.tenant_id, link.gateway_id, link.connected_at, link.frames_in, at)
