"""The outbox: events are written in the transaction that decided them, then relayed to Kafka.

A state change and the events it emits can therefore never part. The relay publishes rows in id
order with the idempotent producer and deletes them only after the broker acknowledged them: a
crash in between publishes them again, and consumers drop the duplicate by event id (inbox).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from amiflow_schemas import Envelope, encode_event, envelope_headers
from amiflow_schemas.topics import topic_for_event
from sqlalchemy import Table, delete, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from amiflow_runtime.db import one_of
from amiflow_runtime.metrics import OUTBOX_PENDING, OUTBOX_PUBLISHED
from amiflow_runtime.telemetry import trace_headers

log = logging.getLogger("amiflow.outbox")

LEADERSHIP_CHECK_S = 5.0  # how stale a dead lock connection may go unnoticed
RETRY_FIRST_S, RETRY_LONGEST_S = 0.5, 10.0  # back-off after a failed term (database or broker away)
OUTAGES = (DBAPIError, KafkaError, OSError, TimeoutError)  # what a database or broker being away raises


def outbox_rows(envelopes: Iterable[Envelope[Any]], now: datetime) -> list[dict[str, Any]]:
    """Rows for the outbox table; the current trace context travels with each event."""
    tracing = trace_headers()
    rows = []
    for envelope in envelopes:
        headers = [*envelope_headers(envelope), *tracing]
        rows.append({
            "topic": topic_for_event(envelope.event_type).name,
            "message_key": envelope.key.encode(),
            "message_value": encode_event(envelope),
            "headers": json.dumps([[k, v.decode()] for k, v in headers]),
            "created_at": now,
        })
    return rows


async def stage(session: AsyncSession, outbox: Table, envelopes: Iterable[Envelope[Any]], now: datetime) -> int:
    """Add events to the outbox inside the caller's open transaction; returns how many."""
    return await stage_rows(session, outbox, outbox_rows(envelopes, now))


async def stage_rows(session: AsyncSession, outbox: Table, rows: list[dict[str, Any]]) -> int:
    """Insert rows made by `outbox_rows` (one statement for all of them); returns how many."""
    if rows:
        await session.execute(insert(outbox), rows)
    return len(rows)


@dataclass
class OutboxRelay:
    """Publishes outbox rows; one relay per service database is active at a time (leader lock)."""

    engine: AsyncEngine
    outbox: Table
    producer: AIOKafkaProducer
    service: str
    batch_size: int = 500
    idle_poll_s: float = 0.05
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False

    def wake(self) -> None:
        """Called after a commit that staged events, so they go out without waiting for the poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Hold leadership and publish until stopped; followers retry leadership every second.

        A database or broker outage never ends the relay: the rows wait in the outbox, and the relay
        backs off and starts over (a batch the broker may have taken goes out again; consumers drop it
        by event id). A relay that died would leave every later event of the service unpublished.
        """
        backoff = RETRY_FIRST_S
        while not self._stopping:
            try:
                await self._lead()
                backoff = RETRY_FIRST_S
            except Exception as exc:  # wait and start over: the rows are safe in the outbox
                if isinstance(exc, OUTAGES):
                    log.warning("outbox relay of %s failed (%s: %s); retrying in %.1f s", self.service,
                                type(exc).__name__, exc, backoff)
                else:  # not an outage: a row the broker refuses holds up every row behind it
                    log.exception("outbox relay of %s failed; retrying in %.1f s", self.service, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, RETRY_LONGEST_S)

    async def _lead(self) -> None:
        """One term: try for leadership, and publish while it is held."""
        async with _Leadership(self.engine, self.service) as leader:
            if not leader.held:
                await self._sleep(1.0)
                return
            log.info("outbox relay of %s is the leader", self.service)
            while not self._stopping and await leader.still_held():
                sent = await self.publish_batch()
                if sent == 0:
                    await self._sleep(self.idle_poll_s)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def publish_batch(self) -> int:
        """Publish the oldest rows and delete them once acknowledged; returns how many were sent."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(self.outbox).order_by(self.outbox.c.id).limit(self.batch_size)
            )).all()
            await conn.rollback()
        OUTBOX_PENDING.set(len(rows))
        if not rows:
            return 0
        futures = [
            await self.producer.send(row.topic, value=row.message_value, key=row.message_key,
                                     headers=[(k, v.encode()) for k, v in json.loads(row.headers)])
            for row in rows
        ]
        await asyncio.gather(*futures)
        async with self.engine.begin() as conn:
            await conn.execute(delete(self.outbox).where(one_of(conn, self.outbox.c.id, [r.id for r in rows])))
        for row in rows:
            OUTBOX_PUBLISHED.labels(row.topic).inc()
        return len(rows)


class _Leadership:
    """PostgreSQL: a session advisory lock on a held connection. SQLite: an exclusive file lock."""

    def __init__(self, engine: AsyncEngine, service: str) -> None:
        self.engine = engine
        self.key = zlib.crc32(f"amiflow-outbox-relay-{service}".encode())
        self.held = False
        self._conn: AsyncConnection | None = None
        self._file: IO[str] | None = None
        self._checked_at = 0.0

    async def __aenter__(self) -> _Leadership:
        if self.engine.dialect.name == "postgresql":
            self._conn = await self.engine.connect()
            self.held = bool((await self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                                       {"k": self.key})).scalar())
            await self._conn.commit()
        else:
            database = make_url(str(self.engine.url)).database or "memory"
            self._file = open(Path(database).with_suffix(".relay.lock"), "w")  # noqa: ASYNC230 - local, instant
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.held = True
            except BlockingIOError:
                self.held = False
        return self

    async def still_held(self) -> bool:
        """False when the lock's connection died, so another relay may have taken over."""
        if self._conn is None:
            return self.held
        now = time.monotonic()
        if now - self._checked_at < LEADERSHIP_CHECK_S:
            return True
        self._checked_at = now
        try:
            await self._conn.execute(text("SELECT 1"))
            await self._conn.commit()
            return True
        except Exception:  # the connection is gone, and the lock with it
            log.warning("outbox relay lost its database connection; re-electing", exc_info=True)
            return False

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            try:
                if self.held:
                    await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                    await self._conn.commit()
            except Exception:  # the server releases session locks when the connection ends
                log.debug("advisory unlock failed", exc_info=True)
            await self._conn.close()
        if self._file is not None:
            self._file.close()  # closing releases the flock
