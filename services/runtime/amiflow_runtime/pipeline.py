"""Applying consumed records exactly once: decode, inbox, handler, outbox, one transaction.

The same pipeline serves aiokafka consumers and Faust agents. The caller commits the records'
offsets only after `apply` / `apply_batch` returned, so the flush order is: database (effect +
inbox + outbox), then offset. A crash between the two redelivers the records; the inbox makes that
a no-op.

`apply_batch` applies a whole batch in one transaction: one inbox query, one commit (one WAL flush)
and one outbox insert for hundreds of events instead of one each — what lets a worker keep up with
a morning's uploads. If any event of the batch fails for a reason of its own, the transaction rolls
back and the batch is applied again event by event, so one poison event is dead-lettered alone and
the others are applied; an outage (database or broker away) is waited out for the whole batch.

A pipeline may name the event types its handler acts on (`wanted`): a record whose `event_type` header
names another type is passed over before decoding — no transaction, no inbox row — since its handler would
do nothing with it (the commands worker reads every ChargeApplied of the ledger for the few account links
it acts on). A record without the header is decoded and handled as usual.

A handler may be a `BatchHandler`: its scope sees the batch's fresh events before any of them is
handled (to take their locks and read what they need in a few set-based queries) and writes back
after the last one (multi-row upserts), around the per-event handler it yields. Events still go
through one by one, each in its own log context and span; on the one-by-one path the scope sees a
batch of one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from amiflow_schemas import Envelope, EventDecodeError, decode_event
from amiflow_schemas.envelope import HEADER_EVENT_TYPE
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from amiflow_runtime import inbox, outbox
from amiflow_runtime.clock import Clock
from amiflow_runtime.deadletter import ConsumedRecord, DeadLetters
from amiflow_runtime.logs import log_context
from amiflow_runtime.metrics import (
    EVENTS_DUPLICATE,
    EVENTS_HANDLED,
    EVENTS_PASSED_OVER,
    HANDLER_RETRIES,
    HANDLER_SECONDS,
)
from amiflow_runtime.telemetry import consume_span

log = logging.getLogger("amiflow.pipeline")

# handler(session, envelope) -> events to emit; it runs inside the open transaction.
Handler = Callable[[AsyncSession, Envelope[Any]], Awaitable[Sequence[Envelope[Any]]]]
# scope(session, fresh events of the batch) -> a context yielding the per-event handler; see the module docstring.
BatchScope = Callable[[AsyncSession, Sequence[Envelope[Any]]], AbstractAsyncContextManager[Handler]]


@dataclass(frozen=True)
class BatchHandler:
    """A handler that prepares and writes back a whole batch at once (see the module docstring)."""

    scope: BatchScope


@asynccontextmanager
async def _per_event(handler: Handler) -> AsyncIterator[Handler]:
    yield handler

ATTEMPTS_BEFORE_DEAD_LETTER = 3
# SQLSTATE classes of a server that is away or going away: connection exception (08), operator
# intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 "cannot connect now" while it starts or stops),
# and the two a retry resolves by itself: a deadlock with another transaction (40P01; it holds locks of accounts
# or meters in another order) and a serialization failure (40001).
OUTAGE_SQLSTATES = ("08", "57P", "40P01", "40001")


class Rejected(Exception):
    """Raised by a handler for an event that is well-formed but can never be applied."""


def is_transient(exc: BaseException) -> bool:
    """True for a database or network outage: not the event's fault, to be waited out, never dead-lettered."""
    if isinstance(exc, OperationalError | OSError | ConnectionError | asyncio.TimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    # asyncpg's errors reach us as a plain DBAPIError; PostgreSQL's SQLSTATE says when the server is away.
    state = str(getattr(exc.orig, "sqlstate", None) or "")
    return exc.connection_invalidated or state.startswith(OUTAGE_SQLSTATES)


@dataclass
class EventPipeline:
    """One consumer's way of applying records; see the module docstring for the guarantees."""

    consumer: str
    sessions: async_sessionmaker[AsyncSession]
    inbox: Table
    outbox: Table
    handler: Handler | BatchHandler
    dead_letters: DeadLetters
    clock: Clock
    on_staged: Callable[[], None] = lambda: None
    max_transient_backoff_s: float = 30.0
    wanted: frozenset[str] | None = None  # the event types the handler acts on; None: every type

    def passes_over(self, record: ConsumedRecord) -> bool:
        """True for a record whose header names an event type the handler does not act on (counted)."""
        if self.wanted is None:
            return False
        named = next((value for key, value in record.headers if key == HEADER_EVENT_TYPE), None)
        if named is None:
            return False
        event_type = named.decode("utf-8", "replace")
        if event_type in self.wanted:
            return False
        EVENTS_PASSED_OVER.labels(self.consumer, event_type).inc()
        return True

    async def apply(self, record: ConsumedRecord) -> None:
        """Apply one record; returns when it is applied, skipped as a duplicate, or dead-lettered."""
        if self.passes_over(record):
            return
        try:
            envelope = decode_event(record.value or b"")
        except EventDecodeError as exc:
            await self.dead_letters.publish(record, str(exc), "undecodable", self.clock.now())
            return
        await self._apply_decoded(record, envelope)

    async def apply_batch(self, records: Sequence[ConsumedRecord]) -> None:
        """Apply records in one transaction (see the module docstring); returns when each is applied,
        skipped as a duplicate, or dead-lettered."""
        decoded: list[tuple[ConsumedRecord, Envelope[Any]]] = []
        for record in records:
            if self.passes_over(record):
                continue
            try:
                decoded.append((record, decode_event(record.value or b"")))
            except EventDecodeError as exc:
                await self.dead_letters.publish(record, str(exc), "undecodable", self.clock.now())
        if not decoded:
            return
        if len(decoded) == 1:
            await self._apply_decoded(*decoded[0])
            return
        backoff = 0.2
        while decoded:
            try:
                await self._apply_many(decoded)
                return
            except Exception as exc:
                if not is_transient(exc):
                    log.warning("a batch of %d events failed (%s: %s); applying them one by one", len(decoded),
                                type(exc).__name__, exc)
                    break
                HANDLER_RETRIES.labels(self.consumer, "transient").inc()
                log.warning("transient failure applying a batch of %d events, retrying in %.1f s: %s",
                            len(decoded), backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_transient_backoff_s)
        for record, envelope in decoded:
            await self._apply_decoded(record, envelope)

    async def _apply_decoded(self, record: ConsumedRecord, envelope: Envelope[Any]) -> None:
        with self._event_scope(record, envelope):
            await self._apply_with_retries(record, envelope)

    @contextmanager
    def _event_scope(self, record: ConsumedRecord, envelope: Envelope[Any]) -> Iterator[None]:
        """The event's log fields and its consume span (continuing the producer's trace)."""
        with log_context(tenant_id=envelope.tenant_id, event_id=envelope.event_id,
                         event_type=envelope.event_type), \
                consume_span(f"{self.consumer} {envelope.event_type}", record.headers,
                             **{"messaging.destination.name": record.topic,
                                "amiflow.event_id": str(envelope.event_id)}):
            yield

    async def _apply_many(self, decoded: list[tuple[ConsumedRecord, Envelope[Any]]]) -> None:
        started = time.perf_counter()
        now = self.clock.now()
        handled: list[str] = []
        async with self.sessions() as session, session.begin():
            fresh = await inbox.claim_many(session, self.inbox, self.consumer,
                                           [envelope.event_id for _, envelope in decoded], now)
            rows: list[dict[str, Any]] = []  # outbox rows, made inside each event's span so its trace goes on
            todo = []
            for record, envelope in decoded:
                if envelope.event_id not in fresh:
                    EVENTS_DUPLICATE.labels(self.consumer, envelope.event_type).inc()
                    continue
                fresh.discard(envelope.event_id)  # the same id again later in the batch is a duplicate
                todo.append((record, envelope))
            async with self._scope(session, [envelope for _, envelope in todo]) as handle:
                for record, envelope in todo:
                    with self._event_scope(record, envelope):
                        rows += outbox.outbox_rows(await handle(session, envelope), now)
                    handled.append(envelope.event_type)
            staged = await outbox.stage_rows(session, self.outbox, rows)
        for event_type in handled:
            EVENTS_HANDLED.labels(self.consumer, event_type).inc()
        HANDLER_SECONDS.labels(self.consumer).observe(time.perf_counter() - started)
        if staged or isinstance(self.handler, BatchHandler):
            # A batch scope may insert outbox rows of its own (encoded once, with the projections that
            # store the same bytes): wake the relay rather than leave them to its idle poll.
            self.on_staged()

    def _scope(self, session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> AbstractAsyncContextManager[Handler]:
        if isinstance(self.handler, BatchHandler):
            return self.handler.scope(session, envelopes)
        return _per_event(self.handler)

    async def _apply_with_retries(self, record: ConsumedRecord, envelope: Envelope[Any]) -> None:
        failures = 0
        backoff = 0.2
        while True:
            try:
                await self._apply_once(envelope)
                return
            except Rejected as exc:
                await self.dead_letters.publish(record, str(exc), "rejected", self.clock.now())
                return
            except Exception as exc:
                if is_transient(exc):
                    HANDLER_RETRIES.labels(self.consumer, "transient").inc()
                    log.warning("transient failure applying %s, retrying in %.1f s: %s",
                                envelope.event_id, backoff, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_transient_backoff_s)
                    continue
                failures += 1
                HANDLER_RETRIES.labels(self.consumer, "error").inc()
                log.exception("handler failed on %s (attempt %d)", envelope.event_id, failures)
                if failures >= ATTEMPTS_BEFORE_DEAD_LETTER:
                    reason = f"handler failed {failures} times: {type(exc).__name__}: {exc}"
                    await self.dead_letters.publish(record, reason, "handler-error", self.clock.now())
                    return

    async def _apply_once(self, envelope: Envelope[Any]) -> None:
        started = time.perf_counter()
        now = self.clock.now()
        staged = 0
        async with self.sessions() as session, session.begin():
            if not await inbox.claim(session, self.inbox, self.consumer, envelope.event_id, now):
                EVENTS_DUPLICATE.labels(self.consumer, envelope.event_type).inc()
                return
            async with self._scope(session, [envelope]) as handle:
                emitted = await handle(session, envelope)
            staged = await outbox.stage(session, self.outbox, emitted, now)
        EVENTS_HANDLED.labels(self.consumer, envelope.event_type).inc()
        HANDLER_SECONDS.labels(self.consumer).observe(time.perf_counter() - started)
        if staged or isinstance(self.handler, BatchHandler):  # as in _apply_many
            self.on_staged()
