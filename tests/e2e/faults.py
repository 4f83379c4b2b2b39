"""What the fault tests (test_faults.py) run on and read back.

`Stack` is the platform as `amiflow up` runs it, but with every process started on its own so that
each can be killed and started again: a Kafka broker and a PostgreSQL server of the stack's own (the
session's servers must never be stopped under other tests), one database per service. `FleetThread`
runs the fleet simulator in the test process on a thread and event loop of its own, so the test's
blocking steps (a broker taking 30 s to start) never stall the simulated DTUs, and the simulator's
delivery ledger — every reply a DTU wrote to its socket — is there to count what the meters sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.kafka import ensure_topics
from amiflow_runtime.localkafka import LocalKafka, free_port, port_open
from amiflow_runtime.localpg import LocalPostgres
from amiflow_schemas import Envelope, EventDecodeError, decode_event
from amiflow_schemas.topics import TOPICS
from ingest.simulator import Fleet

SERVICES = ("ingest", "vee", "billing", "commands", "notify")
ROLES = ("api", "worker")
PROCESSES = (*(f"{service}-{role}" for service in SERVICES for role in ROLES), "mailbox")
READY_TIMEOUT_S = 180.0
T = TypeVar("T")

# Zones whose local hours start at UTC :00, :30 and :15. Every simulated meter reads on the hourly
# grid of the tenant's wall clock, and billing rates a span only once its account pays for the meter:
# the zone is picked so that the next slot lies after the accounts are opened (see `zone_with_slot_ahead`).
SLOT_ZONES = ("Asia/Shanghai", "Asia/Kolkata", "Asia/Kathmandu")


def zone_with_slot_ahead(now: datetime, at_least: timedelta) -> str:
    """The zone of SLOT_ZONES whose next local full hour is the nearest one at least ``at_least`` ahead
    (within half an hour: later readings would still belong to the slot before it)."""
    ahead = {}
    for name in SLOT_ZONES:
        local = now.astimezone(ZoneInfo(name))
        upcoming = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        ahead[name] = upcoming - local
    fitting = [z for z, gap in ahead.items() if at_least <= gap < timedelta(minutes=30)]
    if fitting:
        return min(fitting, key=ahead.__getitem__)
    return min((z for z, gap in ahead.items() if gap < timedelta(minutes=30)), key=lambda z: -ahead[z])


def next_slot(now: datetime, zone: str) -> datetime:
    """The next full hour of the zone's wall clock after ``now``, in UTC."""
    local = now.astimezone(ZoneInfo(zone))
    return (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).astimezone(UTC)


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from the synchronous test on a fresh loop."""
    return asyncio.run(work)


@dataclass
class Stack:
    """Broker, PostgreSQL, and every service's api and worker (and the mail sink), each its own process."""

    folder: Path
    tenant: str
    zone: str
    broker: LocalKafka = field(init=False)
    postgres: LocalPostgres = field(init=False)
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.broker = LocalKafka(home=self.folder / "kafka", port=free_port())
        self.postgres = LocalPostgres()  # its own temporary folder: the server's user must be able to reach it
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)

    @property
    def bootstrap(self) -> str:
        return str(self.broker.bootstrap_servers)

    def api(self, service: str) -> str:
        return f"http://127.0.0.1:{self.env[f'{service.upper()}_API_PORT']}"

    def database(self, service: str) -> str:
        """The asyncpg DSN of a service's database."""
        return str(self.postgres.url(service, driver="postgresql"))

    @property
    def gateway_port(self) -> int:
        return int(self.env["INGEST_GATEWAY_PORT"])

    @property
    def mailbox(self) -> Path:
        return self.folder / "mailbox"

    def start_servers(self) -> None:
        """PostgreSQL with one database per service, the broker with the registry's topics, and the environment."""
        self.postgres.start()
        run_async(self._create_databases())
        self.broker.start()
        run_async(ensure_topics(ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=self.bootstrap), TOPICS))
        ports = {f"{s.upper()}_{kind}_PORT": str(free_port()) for s in SERVICES for kind in ("API", "OPS")}
        self.env = {
            **os.environ, **ports, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "AMIFLOW_ENV": "test",
            "AMIFLOW_DATA_DIR": str(self.folder), "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1",
            "AMIFLOW_TENANT_TIME_ZONES": json.dumps({self.tenant: self.zone}),
            "INGEST_GATEWAY_PORT": str(free_port()), "MAILBOX_PORT": str(free_port()),
            # Every meter is read as soon as its DTU logs in: a DTU back from an outage fills its gap at once.
            "INGEST_GATEWAY_POLL_ON_LOGIN": "true",
            # A notification leased by a worker that is then killed is sent again within the run.
            "NOTIFY_LEASE_S": "15",
            **{f"{s.upper()}_DATABASE_URL": self.postgres.url(s) for s in SERVICES},
        }
        self.env["NOTIFY_TENANT_CHANNELS"] = json.dumps({self.tenant: {"email": {
            "host": "127.0.0.1", "port": int(self.env["MAILBOX_PORT"]), "security": "none",
            "from_address": "notify@amiflow.localhost", "from_name": "amiflow"}}})

    async def _create_databases(self) -> None:
        conn = await asyncpg.connect(self.postgres.url("postgres", driver="postgresql"))
        try:
            for service in SERVICES:
                await conn.execute(f'CREATE DATABASE "{service}"')
        finally:
            await conn.close()

    def command(self, name: str) -> list[str]:
        if name == "mailbox":
            return [sys.executable, "-m", "notify.mailbox", "--port", self.env["MAILBOX_PORT"],
                    "--dir", str(self.mailbox)]
        service, role = name.split("-")
        return [sys.executable, "-m", f"{service}.main", role]

    def start(self, *names: str) -> None:
        for name in names:
            with open(self.folder / "logs" / f"{name}.log", "ab") as out:
                self.processes[name] = subprocess.Popen(self.command(name), env=self.env, stdout=out,
                                                        stderr=subprocess.STDOUT)

    def kill(self, *names: str) -> None:
        """SIGKILL (kill -9): no shutdown, no offset commit, no outbox flush, transactions cut off."""
        for name in names:
            self.processes[name].send_signal(signal.SIGKILL)
        for name in names:
            self.processes[name].wait(30)

    def ready_url(self, name: str) -> str | None:
        if name == "mailbox":
            return None
        service, role = name.split("-")
        port = self.env[f"{service.upper()}_{'API' if role == 'api' else 'OPS'}_PORT"]
        return f"http://127.0.0.1:{port}/readyz"

    def not_ready(self, names: Iterable[str]) -> dict[str, str]:
        """Each process that does not answer ready, with what it says."""
        problems = {}
        for name in names:
            if self.processes[name].poll() is not None:
                problems[name] = f"exited with {self.processes[name].returncode}"
                continue
            url = self.ready_url(name)
            if url is None:
                if not port_open("127.0.0.1", int(self.env["MAILBOX_PORT"])):
                    problems[name] = "not listening"
                continue
            try:
                answer = httpx.get(url, timeout=3)
            except httpx.HTTPError as exc:
                problems[name] = type(exc).__name__
                continue
            if answer.status_code != 200:
                problems[name] = answer.text[:300]
        return problems

    def wait_ready(self, names: Iterable[str] = PROCESSES, timeout_s: float = READY_TIMEOUT_S) -> dict[str, str]:
        """Wait until every named process is ready; what is still not ready at the deadline (empty: all)."""
        names = list(names)
        deadline = time.monotonic() + timeout_s
        while problems := self.not_ready(names):
            if time.monotonic() > deadline:
                return problems
            time.sleep(0.5)
        return {}

    def log_tail(self, name: str, chars: int = 3000) -> str:
        return (self.folder / "logs" / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """SIGTERM every process, SIGKILL what hangs; then the broker and the database server."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.broker.stop()
        self.postgres.destroy()


class FleetThread:
    """The fleet simulator on its own thread and event loop, driven from the synchronous test."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fleet", daemon=True)
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, T], timeout_s: float = 180.0) -> T:
        """Run a coroutine on the fleet's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout_s)

    def close(self) -> None:
        self.run(self.fleet.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def settled(self, timeout_s: float) -> bool:
        """Until every DTU is logged in with nothing held in its backlog; False at the deadline."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            dtus = self.fleet.dtus.values()
            if all(d.online.is_set() and not d.backlog for d in dtus):
                return True
            await asyncio.sleep(0.5)
        return False


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one statement on a service's database."""
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@dataclass(frozen=True)
class Counts:
    """How far the pipeline has come: the numbers the test waits on between faults."""

    accepted: int  # readings ingest recorded
    validated: int  # ReadingReceived events VEE applied
    rated: int  # vee events billing applied
    commands: int  # command lifecycle rows
    notifications: int
    outboxes: int  # events decided but not yet on Kafka, all services

    @classmethod
    async def of(cls, stack: Stack) -> Counts:
        async def one(service: str, sql: str, *args: Any) -> int:
            return int((await query(stack.database(service), sql, *args))[0][0])

        outboxes = 0
        for service in SERVICES:
            outboxes += await one(service, "SELECT count(*) FROM outbox")
        return cls(await one("ingest", "SELECT count(*) FROM accepted_readings WHERE tenant_id = $1", stack.tenant),
                   await one("vee", "SELECT count(*) FROM inbox WHERE consumer = 'vee.validation'"),
                   await one("billing", "SELECT count(*) FROM inbox WHERE consumer = 'billing.readings'"),
                   await one("commands", "SELECT count(*) FROM command_events"),
                   await one("notify", "SELECT count(*) FROM notifications"), outboxes)


def counts(stack: Stack) -> Counts | None:
    """The counts now, or None while the database does not answer."""
    try:
        return run_async(Counts.of(stack))
    except (OSError, asyncpg.PostgresError):
        return None


def wait_for_progress(stack: Stack, stages: tuple[str, ...], at_least: int, timeout_s: float) -> float | None:
    """Until each of the `Counts` ``stages`` grew by ``at_least``; the seconds it took, None if it never did."""
    started = time.monotonic()
    before = None
    while time.monotonic() - started < timeout_s:
        now = counts(stack)
        if now is not None:
            before = before or now
            if all(getattr(now, s) - getattr(before, s) >= at_least for s in stages):
                return time.monotonic() - started
        time.sleep(1.0)
    return None


def wait_until_drained(stack: Stack, timeout_s: float, quiet_s: float = 12.0) -> Counts | None:
    """Until every outbox is empty, VEE applied every accepted reading, and nothing moved for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = counts(stack)
        if now != last:
            last, since = now, time.monotonic()
        elif now is not None and now.outboxes == 0 and now.validated >= now.accepted and \
                time.monotonic() - since >= quiet_s:
            return now
        time.sleep(1.0)
    return None


async def read_topics(bootstrap: str, topics: Iterable[str], tenant: str) -> dict[str, list[Envelope[Any]]]:
    """Every event of the tenant on the topics, from the start to the current end, without a consumer group."""
    topics = list(topics)
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    found: dict[str, list[Envelope[Any]]] = {t: [] for t in topics}
    try:
        async with asyncio.timeout(120):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=200)
            ends = await consumer.end_offsets(list(consumer.assignment()))
            await consumer.seek_to_beginning()
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for partition, messages in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
                    for message in messages:
                        try:
                            event = decode_event(message.value or b"")
                        except EventDecodeError:
                            continue
                        if event.tenant_id == tenant:
                            found[partition.topic].append(event)
    finally:
        await consumer.stop()
    return found
