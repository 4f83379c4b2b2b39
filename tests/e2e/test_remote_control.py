"""Remote control end to end (issue 6): billing.md B2-B4 with the fleet simulator, and a commands worker
killed between issue and confirmation.

B2-B4 run on the session's platform (`amiflow up`: every service on the session's broker and
PostgreSQL). Each test has its own tenant and a small simulated fleet: seed 11 puts one CJ/T 188 water
meter and one DL/T 645 electricity meter behind each of two DTUs. The fleet is registered through
ingest's API and connects to the platform's DTU gateway. The account holds one meter of each kind.
Billing's balance events go onto amiflow.billing.balance as billing publishes them (keyed by account).
The tenant's cut-off policy is set with PUT /v1/cut-off-policy. What a test asserts comes from three
independent places: the topics (what commands and ingest said), the operator console (each command's
state and history, GET /v1/commands), and the simulated meters (the frames they obeyed and their relay
state).

The crash test does not use the platform. Every commands worker consumes in the same fixed consumer
groups (commands.balance, commands.lifecycle, ...). A second worker on the session's broker would
therefore share partitions with the platform's worker, and both would act on the same events. The
platform's own worker cannot be killed either, because `amiflow up` stops everything when a child dies.
So the crash test runs its own broker, ingest API and worker, and commands worker, each service on its
own database (ingest's API and worker, and commands' API and worker), as test_broker_outage_at_start
does. The device makes the kill deterministic. Its DTU is
offline when the trip is issued, like a meter that wakes a few times a day, so the command waits in
ingest's mailbox. The worker is killed as soon as RelayCommandIssued is on the topic. The DTU then logs
in, and ingest acknowledges and reads back while no commands worker runs. The restarted worker must
confirm the command from what it missed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.kafka import ensure_topics
from amiflow_runtime.localkafka import LocalKafka, free_port
from amiflow_runtime.service import ServiceRuntime
from amiflow_runtime.testing import auth_headers, create_database, unique
from amiflow_schemas import Envelope, decode_event, encode_event, envelope_headers, new_envelope
from amiflow_schemas.events.billing import AccountMeter, BalanceDepleted, BalanceRestored
from amiflow_schemas.events.commands import CancelReason, RelayAction, ScheduleHold
from amiflow_schemas.primitives import RelayState, Utility
from amiflow_schemas.topics import TOPICS, topic_named
from commands.adapters import store
from commands.config import CommandsSettings
from commands.core.model import CommandState
from commands.core.policy import CutOffPolicy, QuietWindow
from commands.main import build_runtime
from ingest.simulator import Fleet, FleetSpec, MeterKind, ReplyKind
from ingest.simulator.electricity import ElectricityMeter
from ingest.simulator.ledger import Delivery
from ingest.simulator.models import SimMeter

pytestmark = pytest.mark.e2e

BALANCE = topic_named("amiflow.billing.balance").name
LIFECYCLE = topic_named("amiflow.commands.lifecycle").name
DEVICE_STATUS = topic_named("amiflow.ingest.device-status").name
ACCOUNT = "ACC-1"
CUT_ELECTRICITY = CutOffPolicy(policy_id="cut-electricity-not-water", cut_utilities=frozenset({Utility.ELECTRICITY}))
QUIET_LEFT_S = 20  # how long the quiet window of the waiting test still runs when the depletion is published
SENT = ("CommandDispatched", "RelayCommandIssued", "ValveCommandIssued")
# A policy cut-off or restore, as the commands service logs it from request to read-back.
CONFIRMED_LOG = ["CommandRequested", "CommandScheduled", "CommandDispatched", "RelayCommandIssued",
                 "CommandAcknowledged", "CommandConfirmed"]

Where = Callable[[Envelope[Any]], bool]


def about(command_id: Any) -> Where:
    return lambda e: getattr(e.payload, "command_id", None) == command_id


def on(meter_id: str) -> Where:
    return lambda e: meter_id in (getattr(e.payload, "device_id", None), getattr(e.payload, "meter_id", None))


class Stream:
    """One tenant's events on the lifecycle and device-status topics, read from the start without a group.

    Each event counts once. A relay that crashed between publishing and deleting its outbox rows sends
    them again with the same event id, and consumers drop such a record by that id (their inbox).
    """

    def __init__(self, bootstrap: str, tenant: str) -> None:
        self.consumer = AIOKafkaConsumer(LIFECYCLE, DEVICE_STATUS, bootstrap_servers=bootstrap, group_id=None,
                                         auto_offset_reset="earliest", enable_auto_commit=False)
        self.tenant = tenant
        self.events: dict[uuid.UUID, Envelope[Any]] = {}

    def of(self, *event_types: str, where: Where = lambda e: True) -> list[Envelope[Any]]:
        return [e for e in self.events.values() if e.event_type in event_types and where(e)]

    async def until(self, event_type: str, where: Where = lambda e: True, count: int = 1,
                    timeout: float = 60.0) -> list[Envelope[Any]]:
        """The matching events once there are ``count`` of them; AssertionError after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found := self.of(event_type, where=where)) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(found)} of {count} {event_type} within {timeout:.0f} s; "
                                     f"the tenant's events so far: {self.story()}")
            await self.read()
        return found

    async def read(self) -> None:
        for messages in (await self.consumer.getmany(timeout_ms=300)).values():
            for message in messages:
                event = decode_event(message.value)
                if event.tenant_id == self.tenant:
                    self.events.setdefault(event.event_id, event)

    def story(self) -> list[str]:
        return [f"{e.event_type}({getattr(e.payload, 'device_id', None) or getattr(e.payload, 'meter_id', '')})"
                for e in self.events.values()]


@dataclass
class Site:
    """A tenant's simulated fleet, the account that pays for two of its meters, and where to watch them."""

    tenant: str
    bootstrap: str
    fleet: Fleet
    stream: Stream
    console: httpx.AsyncClient  # the commands API, as the tenant's operator
    commands_db: ServiceRuntime  # the commands database: which devices the service knows has no API
    zone: ZoneInfo
    water: SimMeter = field(init=False)
    power: ElectricityMeter = field(init=False)

    def __post_init__(self) -> None:
        self.water, self.power = self.fleet.valve_meters()[0], self.fleet.relay_meters()[0]

    @property
    def meters(self) -> tuple[AccountMeter, ...]:
        return (AccountMeter(meter_id=self.water.meter_id, utility=Utility.WATER),
                AccountMeter(meter_id=self.power.meter_id, utility=Utility.ELECTRICITY))

    def depleted(self) -> BalanceDepleted:
        return BalanceDepleted(account_id=ACCOUNT, balance=Decimal("-0.50"), credit_limit=Decimal(0), currency="CNY",
                               depleted_at=datetime.now(UTC), meters=self.meters)

    def restored(self) -> BalanceRestored:
        return BalanceRestored(account_id=ACCOUNT, balance=Decimal("49.50"), restore_threshold=Decimal(0),
                               currency="CNY", restored_at=datetime.now(UTC), meters=self.meters)

    async def publish(self, payload: BalanceDepleted | BalanceRestored) -> Envelope[Any]:
        """A balance state onto amiflow.billing.balance, as billing publishes it."""
        now = datetime.now(UTC)
        envelope = new_envelope(payload, event_id=uuid.uuid4(), tenant_id=self.tenant, key=payload.account_id,
                                occurred_at=now, recorded_at=now, producer="billing")
        await self.send(envelope)
        return envelope

    async def send(self, envelope: Envelope[Any]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(BALANCE, encode_event(envelope), key=envelope.key.encode(),
                                         headers=envelope_headers(envelope))
        finally:
            await producer.stop()

    async def set_policy(self, policy: CutOffPolicy) -> None:
        response = await self.console.put("/v1/cut-off-policy",
                                          json={**policy.model_dump(mode="json"), "updated_by": "ops-e2e"})
        assert response.status_code == 200, response.text

    async def commands_kept(self) -> list[tuple[uuid.UUID, CommandState, int]]:
        """Every command of the tenant as the console lists it, oldest first: id, state, sends."""
        response = await self.console.get("/v1/commands")
        assert response.status_code == 200, response.text
        return [(uuid.UUID(c["command_id"]), CommandState(c["state"]), c["attempt"]) for c in reversed(response.json())]

    async def log_of(self, command_id: Any) -> list[str]:
        """The command's history as the console shows it: its lifecycle events, oldest first."""
        response = await self.console.get(f"/v1/commands/{command_id}")
        assert response.status_code == 200, response.text
        return [h["event_type"] for h in response.json()["history"]]

    async def known_to_commands(self, timeout: float = 60.0) -> None:
        """Until the commands service has both meters from the registry (MeterDefined)."""
        wanted = {self.water.meter_id, self.power.meter_id}
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with self.commands_db.sessions() as session:
                known = await store.devices_of(session, self.tenant, sorted(wanted))
            if set(known) == wanted:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"commands knows {sorted(known)} of {sorted(wanted)} after {timeout:.0f} s")
            await asyncio.sleep(0.2)

    def frames(self, meter: SimMeter, kind: ReplyKind) -> list[Delivery]:
        """The replies of that kind the meter wrote on its bus: one per command it obeyed."""
        return [d for d in self.fleet.ledger.for_meter(meter.meter_id) if d.kind is kind]


def fleet_of(tenant: str) -> Fleet:
    # Push-registered meters are never polled, so every frame on a bus answers a command or its read-back.
    # With no drift, leaks or low batteries, no clock check or alarm rule can interfere.
    return Fleet.build(FleetSpec(meters=4, dtus=2, seed=11, prefix=tenant.upper(), tenant=tenant,
                                 mix=((MeterKind.WATER, 1), (MeterKind.ELECTRICITY, 1)), schedule="push",
                                 drift_rate=0.0, leak_rate=0.0, low_battery_rate=0.0))


@asynccontextmanager
async def site_on(bootstrap: str, ingest_api: str, commands_api: str, commands_database_url: str,
                  ) -> AsyncIterator[Site]:
    """A new tenant's fleet registered with ingest and known to commands; its DTUs not connected yet."""
    tenant = unique("remote")
    fleet = fleet_of(tenant)
    settings = CommandsSettings(database_url=commands_database_url)
    runtime = build_runtime(settings, "e2e")
    stream = Stream(bootstrap, tenant)
    await stream.consumer.start()
    console = httpx.AsyncClient(base_url=commands_api, headers=auth_headers(tenant), timeout=10)
    try:
        await fleet.register(ingest_api, deadline_s=60)
        site = Site(tenant, bootstrap, fleet, stream, console, runtime, ZoneInfo(settings.zone_of(tenant)))
        await site.known_to_commands()
        yield site
    finally:
        await fleet.stop()
        await console.aclose()
        await stream.consumer.stop()
        await runtime.engine.dispose()


@pytest.fixture
async def site(platform: Any) -> AsyncIterator[Site]:
    """A fleet on the platform's gateway, every DTU logged in."""
    async with site_on(platform.bootstrap, platform.api["ingest"], platform.api["commands"],
                       platform.env["COMMANDS_DATABASE_URL"]) as s:
        await s.fleet.start("127.0.0.1", int(platform.env["INGEST_GATEWAY_PORT"]))
        await s.fleet.wait_online(30)
        yield s


def quiet_until(ends: datetime) -> CutOffPolicy:
    """"Cut electricity, not water", quiet from an hour ago until ``ends`` (wall clock in ``ends``' zone)."""
    began = datetime.now(ends.tzinfo) - timedelta(hours=1)
    window = QuietWindow(start=began.time().replace(microsecond=0), end=ends.time())
    return CutOffPolicy(policy_id="quiet-now", cut_utilities=frozenset({Utility.ELECTRICITY}), quiet_windows=(window,))


async def test_b2_b3_depletion_trips_only_the_electricity_relay_and_payment_restores_it_each_confirmed_by_read_back(
        site: Site) -> None:
    await site.set_policy(CUT_ELECTRICITY)
    depletion = await site.publish(site.depleted())

    [trip] = await site.stream.until("RelayCommandIssued", on(site.power.meter_id))
    assert (trip.payload.action, trip.payload.account_id) == (RelayAction.TRIP, ACCOUNT)
    [ack] = await site.stream.until("CommandAcknowledged", about(trip.payload.command_id))
    assert ack.producer == "ingest"
    [confirmed] = await site.stream.until("CommandConfirmed", about(trip.payload.command_id))
    assert confirmed.payload.relay_state is RelayState.DISCONNECTED
    # Confirmed by what the meter itself reported after the trip, not by the acknowledgement.
    assert confirmed.payload.read_back_event_id is not None
    [read_back] = await site.stream.until("DeviceStatusReported",
                                          lambda e: e.event_id == confirmed.payload.read_back_event_id)
    assert (read_back.producer, read_back.payload.meter_id, read_back.payload.relay) == (
        "ingest", site.power.meter_id, RelayState.DISCONNECTED)
    assert site.power.relay is RelayState.DISCONNECTED
    assert len(site.frames(site.power, ReplyKind.RELAY)) == 1

    # Billing's event delivered again, and a later depletion of the same account: neither sends anything.
    # They sit on the account's partition before the payment, so they are handled before it.
    await site.send(depletion)
    await site.publish(site.depleted())
    await site.publish(site.restored())
    [restore] = await site.stream.until("RelayCommandIssued", lambda e: e.payload.action is RelayAction.CLOSE_ALLOWED)
    [confirmed] = await site.stream.until("CommandConfirmed", about(restore.payload.command_id))
    assert confirmed.payload.relay_state is RelayState.CLOSE_ALLOWED  # the customer presses the button
    assert site.power.relay is RelayState.CLOSE_ALLOWED

    issued = site.stream.of("RelayCommandIssued", "ValveCommandIssued")
    assert [(e.event_type, e.payload.device_id, e.payload.action) for e in issued] == [
        ("RelayCommandIssued", site.power.meter_id, RelayAction.TRIP),
        ("RelayCommandIssued", site.power.meter_id, RelayAction.CLOSE_ALLOWED)]
    assert site.frames(site.water, ReplyKind.VALVE) == []  # "cut electricity, not water"
    assert len(site.frames(site.power, ReplyKind.RELAY)) == 2  # the trip and the restore, each obeyed once
    assert await site.commands_kept() == [(trip.payload.command_id, CommandState.CONFIRMED, 1),
                                          (restore.payload.command_id, CommandState.CONFIRMED, 1)]
    for command_id in (trip.payload.command_id, restore.payload.command_id):
        assert await site.log_of(command_id) == CONFIRMED_LOG


async def test_b4_a_depletion_in_a_quiet_window_is_held_until_the_window_ends_then_trips_and_is_confirmed(
        site: Site) -> None:
    ends = (datetime.now(site.zone) + timedelta(seconds=QUIET_LEFT_S)).replace(microsecond=0)
    await site.set_policy(quiet_until(ends))
    await site.publish(site.depleted())

    [scheduled] = await site.stream.until("CommandScheduled", on(site.power.meter_id))
    assert scheduled.payload.scheduled_at < ends, "the depletion reached commands after the quiet window ended"
    assert (scheduled.payload.send_at, scheduled.payload.holds) == (ends, (ScheduleHold.QUIET_WINDOW,))
    command_id = scheduled.payload.command_id

    [issued] = await site.stream.until("RelayCommandIssued", about(command_id), timeout=QUIET_LEFT_S + 30)
    [dispatched] = site.stream.of("CommandDispatched", where=about(command_id))
    assert dispatched.payload.dispatched_at >= ends and issued.payload.issued_at >= ends
    await site.stream.until("CommandConfirmed", about(command_id))
    [obeyed] = site.frames(site.power, ReplyKind.RELAY)
    assert obeyed.delivered_at >= ends, "the meter tripped before the quiet window ended"
    assert site.stream.of("ValveCommandIssued") == [] and site.frames(site.water, ReplyKind.VALVE) == []
    assert await site.log_of(command_id) == CONFIRMED_LOG


async def test_b4_a_payment_before_the_quiet_window_ends_cancels_the_held_cut_off_and_nothing_is_sent(
        site: Site) -> None:
    ends = (datetime.now(site.zone) + timedelta(hours=2)).replace(microsecond=0)
    await site.set_policy(quiet_until(ends))
    await site.publish(site.depleted())
    [scheduled] = await site.stream.until("CommandScheduled", on(site.power.meter_id))
    assert scheduled.payload.send_at == ends

    await site.publish(site.restored())
    [cancelled] = await site.stream.until("CommandCancelled", about(scheduled.payload.command_id))
    assert (cancelled.payload.reason, cancelled.payload.cancelled_by) == (CancelReason.BALANCE_RESTORED, "commands")
    # The cancellation and anything the payment decided were kept in one transaction: the database is complete.
    assert await site.commands_kept() == [(scheduled.payload.command_id, CommandState.CANCELLED, 0)]
    assert await site.log_of(scheduled.payload.command_id) == ["CommandRequested", "CommandScheduled",
                                                               "CommandCancelled"]
    # A send would precede the cancellation on the device's partition.
    assert site.stream.of(*SENT) == []
    assert site.frames(site.power, ReplyKind.RELAY) == [] and site.power.relay is RelayState.CONNECTED


# The crash test's processes and the port each answers /readyz on.
PROCESSES = {"ingest-api": "INGEST_API_PORT", "ingest-worker": "INGEST_OPS_PORT",
             "commands-api": "COMMANDS_API_PORT", "commands-worker": "COMMANDS_OPS_PORT"}


@dataclass
class Stack:
    """A broker, ingest's API and worker, and a commands worker of the test's own; one database per service."""

    broker: LocalKafka
    env: dict[str, str]
    folder: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, port: str) -> str:
        return f"http://127.0.0.1:{self.env[port]}"

    @property
    def ready_urls(self) -> dict[str, str]:
        return {name: f"{self.url(port)}/readyz" for name, port in PROCESSES.items()}

    def start(self, name: str) -> None:
        service, role = name.split("-")
        with open(self.folder / f"{name}.log", "ab") as out:
            self.processes[name] = subprocess.Popen([sys.executable, "-m", f"{service}.main", role], env=self.env,
                                                    stdout=out, stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no offset commit, no outbox flush."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.broker.stop()

    def logs(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    async def ready(self, *names: str, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            for name in names:
                while not await _answers(http, self.ready_urls[name]):
                    if self.processes[name].poll() is not None or asyncio.get_running_loop().time() > deadline:
                        raise AssertionError(f"{name} not ready:\n{self.logs(name)}")
                    await asyncio.sleep(0.3)


async def _answers(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def stack(postgres_admin_url: str, tmp_path: Path) -> Iterator[Stack]:
    broker = LocalKafka(home=tmp_path / "kafka", port=free_port())
    bootstrap = broker.start()
    ports = {name: str(free_port()) for name in ("INGEST_API_PORT", "INGEST_OPS_PORT", "INGEST_GATEWAY_PORT",
                                                 "COMMANDS_API_PORT", "COMMANDS_OPS_PORT")}
    env = {**os.environ, **ports, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "AMIFLOW_ENV": "test",
           "AMIFLOW_DATA_DIR": str(tmp_path), "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1",
           "INGEST_DATABASE_URL": asyncio.run(create_database(postgres_admin_url, "ingestcrash")),
           "COMMANDS_DATABASE_URL": asyncio.run(create_database(postgres_admin_url, "commandscrash"))}
    running = Stack(broker, env, tmp_path)
    try:
        asyncio.run(ensure_topics(ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap), TOPICS))
        for name in PROCESSES:
            running.start(name)
        yield running
    finally:
        running.stop()


async def test_a_commands_worker_killed_between_issue_and_confirmation_neither_loses_nor_duplicates_the_command(
        stack: Stack) -> None:
    await stack.ready(*PROCESSES)
    async with site_on(stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.url("INGEST_API_PORT"),
                       stack.url("COMMANDS_API_PORT"), stack.env["COMMANDS_DATABASE_URL"]) as site:
        await site.set_policy(CUT_ELECTRICITY)
        await site.publish(site.depleted())
        [issued] = await site.stream.until("RelayCommandIssued", on(site.power.meter_id))
        stack.kill("commands-worker")  # the DTU is offline: the trip waits in ingest's mailbox, unacknowledged
        command_id = issued.payload.command_id

        # The DTU wakes up: ingest sends the waiting trip, the meter obeys, ingest reads it back.
        await site.fleet.start("127.0.0.1", int(stack.env["INGEST_GATEWAY_PORT"]))
        await site.stream.until("CommandAcknowledged", about(command_id))
        await site.stream.until("DeviceStatusReported",
                               lambda e: on(site.power.meter_id)(e) and e.payload.relay is RelayState.DISCONNECTED)
        # Acknowledged and read back while no worker ran: the command's state still says dispatched.
        assert await site.commands_kept() == [(command_id, CommandState.DISPATCHED, 1)]

        stack.start("commands-worker")
        [confirmed] = await site.stream.until("CommandConfirmed", about(command_id), timeout=90)
        assert confirmed.payload.relay_state is RelayState.DISCONNECTED

        assert await site.commands_kept() == [(command_id, CommandState.CONFIRMED, 1)]
        assert await site.log_of(command_id) == CONFIRMED_LOG
        for event_type in ("CommandRequested", "CommandDispatched", "RelayCommandIssued", "CommandAcknowledged",
                           "CommandConfirmed"):
            assert len(site.stream.of(event_type, where=about(command_id))) == 1, f"{event_type}: {site.stream.story()}"
        assert len(site.frames(site.power, ReplyKind.RELAY)) == 1, "the meter was told twice"
        assert site.power.relay is RelayState.DISCONNECTED
