"""The process shell of a service: database, Kafka producer, outbox relay and consumers, started
in the background so health endpoints answer while the broker or database is still coming up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from amiflow_runtime.clock import Clock, SystemClock
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.consumer import InboxConsumer
from amiflow_runtime.db import make_engine, sessions, upgrade_async
from amiflow_runtime.deadletter import DeadLetters
from amiflow_runtime.inbox import forget_before
from amiflow_runtime.kafka import make_producer, wait_for_kafka
from amiflow_runtime.outbox import OutboxRelay
from amiflow_runtime.pipeline import BatchHandler, EventPipeline, Handler

log = logging.getLogger("amiflow.service")


@dataclass(frozen=True)
class Subscription:
    """A consumer group of this service: its name, topics and handler."""

    consumer: str
    topics: Sequence[str]
    handler: Handler | BatchHandler
    # The event types the handler acts on; records of other types are passed over unread (see pipeline).
    event_types: frozenset[str] | None = None


@dataclass
class ServiceRuntime:
    """Everything one service process needs from the platform, built from settings."""

    settings: ServiceSettings
    role: str  # "api" or "worker": names the Kafka clients and log lines
    migrations_dir: Path
    inbox: Table
    outbox: Table
    dead_letter_topic: str
    clock: Clock = field(default_factory=SystemClock)
    relay_outbox: bool = True
    engine: AsyncEngine = field(init=False)
    sessions: async_sessionmaker[AsyncSession] = field(init=False)
    producer: AIOKafkaProducer | None = field(default=None, init=False)
    relay: OutboxRelay | None = field(default=None, init=False)
    consumers: list[InboxConsumer] = field(default_factory=list, init=False)
    started: bool = field(default=False, init=False)
    startup_error: str | None = field(default=None, init=False)
    started_event: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # Faust agents report here (plain consumers report through `consumers`).
    agents_ready: dict[str, bool] = field(default_factory=dict, init=False)
    _tasks: list[asyncio.Future[None]] = field(default_factory=list, init=False)
    _jobs: list[asyncio.Future[None]] = field(default_factory=list, init=False)  # servers: cancelled at stop

    def __post_init__(self) -> None:
        self.engine = make_engine(self.settings.resolved_database_url)
        self.sessions = sessions(self.engine)

    @property
    def name(self) -> str:
        return f"{self.settings.service_name}-{self.role}"

    async def migrate(self) -> None:
        """Bring this service's tables to the newest revision."""
        await upgrade_async(self.migrations_dir, self.settings.resolved_database_url)

    def start_in_background(self, subscriptions: Sequence[Subscription] = (),
                            extra: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        """Begin startup without blocking the caller (HTTP keeps serving /healthz meanwhile)."""
        self._tasks.append(asyncio.create_task(self.start(subscriptions, extra), name=f"{self.name}-start"))

    async def start(self, subscriptions: Sequence[Subscription] = (),
                    extra: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        """Migrate, wait for Kafka, start producer, relay and consumers; sets `started_event`."""
        try:
            await self.migrate()
            await wait_for_kafka(self.settings, self.name)
            self.producer = make_producer(self.settings, client_id=self.name)
            await self.producer.start()
            if self.relay_outbox:
                self.relay = OutboxRelay(self.engine, self.outbox, self.producer, self.settings.service_name)
                self._spawn(self.relay.run(), "outbox-relay")
                self._jobs.append(self._spawn(self._sweep_inbox(), "inbox-sweep"))
            for subscription in subscriptions:
                self._spawn_consumer(subscription)
            for job in extra:
                self._jobs.append(self._spawn(job(), getattr(job, "__name__", "job")))
            self.started = True
            self.started_event.set()
            log.info("%s started", self.name)
        except Exception as exc:
            self.startup_error = f"{type(exc).__name__}: {exc}"
            log.exception("%s failed to start", self.name)
            raise

    async def _sweep_inbox(self) -> None:
        # Hourly, in small batches so a large backlog never holds a long transaction.
        while True:
            cutoff = self.clock.now() - timedelta(days=self.settings.inbox_retention_days)
            async with self.sessions() as session, session.begin():
                forgotten = await forget_before(session, self.inbox, cutoff)
            if forgotten:
                log.info("forgot %d inbox ids older than %s", forgotten, cutoff.date())
            await asyncio.sleep(1 if forgotten else 3600)

    def pipeline(self, consumer: str, handler: Handler | BatchHandler,
                 event_types: frozenset[str] | None = None) -> EventPipeline:
        """An EventPipeline bound to this process's database, outbox and dead-letter topic."""
        assert self.producer is not None, "the producer starts before any pipeline"
        return EventPipeline(
            consumer=consumer, sessions=self.sessions, inbox=self.inbox, outbox=self.outbox,
            handler=handler, dead_letters=DeadLetters(self.producer, self.dead_letter_topic, consumer),
            clock=self.clock, on_staged=self.wake_relay, wanted=event_types,
        )

    def _spawn_consumer(self, subscription: Subscription) -> None:
        consumer = InboxConsumer(self.settings, subscription.topics,
                                 self.pipeline(subscription.consumer, subscription.handler, subscription.event_types))
        self.consumers.append(consumer)
        self._spawn(consumer.run(), subscription.consumer)

    def _spawn(self, job: Awaitable[None], name: str) -> asyncio.Future[None]:
        task = asyncio.ensure_future(job)
        task.add_done_callback(lambda t: self._on_task_done(name, t))
        self._tasks.append(task)
        return task

    def _on_task_done(self, name: str, task: asyncio.Future[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.startup_error = f"{name} died: {type(exc).__name__}: {exc}"
            log.error("%s task %s died", self.name, name, exc_info=exc)

    def wake_relay(self) -> None:
        """Tell the relay that events were just committed to the outbox."""
        if self.relay is not None:
            self.relay.wake()

    async def readiness(self) -> dict[str, bool]:
        """What /readyz reports: each check and whether it passes."""
        checks = {"started": self.started and self.startup_error is None}
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = True
        except Exception:  # any failure means not ready; the reason is in the logs
            checks["database"] = False
        checks.update({f"consumer:{c.pipeline.consumer}": c.ready for c in self.consumers})
        checks.update({f"agent:{name}": ready for name, ready in self.agents_ready.items()})
        return checks

    async def stop(self) -> None:
        """Stop consumers first (they finish the record in hand), then the relay, then the producer."""
        for job in self._jobs:
            job.cancel()  # listeners (the DTU gateway) run until cancelled
        for consumer in self.consumers:
            consumer.stop()
        if self.relay is not None:
            self.relay.stop()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=15)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.producer is not None:
            await self.producer.stop()
        await self.engine.dispose()
        log.info("%s stopped", self.name)
