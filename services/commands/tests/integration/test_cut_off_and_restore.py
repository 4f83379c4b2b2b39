"""The commands worker's handlers on SQLite and PostgreSQL: billing.md B2-B4 through the registry, balance,
acknowledgement and read-back handlers and the command timer, with the events they stage for Kafka."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.outbox import stage
from amiflow_schemas import decode_event, new_envelope
from amiflow_schemas.events.accounts import LinkReason, MeterLinkedToAccount, MeterUnlinkedFromAccount
from amiflow_schemas.events.billing import AccountMeter, BalanceDepleted, BalanceRestored
from amiflow_schemas.events.commands import CommandAcknowledged
from amiflow_schemas.events.devices import DeviceStatusReported
from amiflow_schemas.events.registry import MeterDefined
from amiflow_schemas.examples import example_payloads
from amiflow_schemas.primitives import RelayState, Unit, Utility
from commands.adapters import db, store
from commands.app import account_handler, balance_handler, fire_due, lifecycle_handler, registry_handler, status_handler
from commands.config import CommandsSettings
from commands.core.model import CommandState
from commands.core.policy import CutOffPolicy, QuietWindow, Weekday
from commands.main import build_runtime
from sqlalchemy import select

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
TENANT = "market"
WATER, POWER = "WM-000012345678", "EM-123456789012"
METERS = (AccountMeter(meter_id=WATER, utility=Utility.WATER),
          AccountMeter(meter_id=POWER, utility=Utility.ELECTRICITY))
CUT_ELECTRICITY = CutOffPolicy(policy_id="cut-electricity-not-water", cut_utilities=frozenset({Utility.ELECTRICITY}))
NIGHTS_AND_WEEKENDS = CUT_ELECTRICITY.model_copy(update={
    "policy_id": "quiet", "quiet_windows": (QuietWindow(start="18:00", end="08:00"),),
    "quiet_weekdays": frozenset({Weekday.SAT, Weekday.SUN})})


class Worker:
    """The worker's handlers in their own transactions, staging what they return as the pipeline does."""

    def __init__(self, runtime: Any, settings: CommandsSettings) -> None:
        self.runtime, self.settings = runtime, settings

    def at(self, moment: datetime) -> None:
        self.runtime.clock = FrozenClock(moment)

    async def deliver(self, handler: Any, payload: Any, key: str, producer: str = "billing") -> None:
        now = self.runtime.clock.now()
        envelope = new_envelope(payload, event_id=uuid.uuid4(), tenant_id=TENANT, key=key, occurred_at=now,
                                recorded_at=now, producer=producer)
        async with self.runtime.sessions() as session, session.begin():
            await stage(session, db.outbox, await handler(session, envelope), now)

    async def balance(self, payload: Any) -> None:
        await self.deliver(balance_handler(self.runtime.clock, self.settings), payload, payload.account_id)

    async def tick(self) -> int:
        return await fire_due(self.runtime.sessions, self.runtime.clock, self.settings, lambda: None)

    async def staged(self, *types: str) -> list[Any]:
        async with self.runtime.engine.connect() as conn:
            rows = (await conn.execute(select(db.outbox).order_by(db.outbox.c.id))).all()
        return [e.payload for e in (decode_event(r.message_value) for r in rows) if not types or e.event_type in types]

    async def command(self, command_id: Any) -> Any:
        async with self.runtime.sessions() as session:
            return await store.load(session, TENANT, command_id)

    async def policy(self, policy: CutOffPolicy) -> None:
        async with self.runtime.sessions() as session, session.begin():
            await store.save_policy(session, TENANT, policy, "ops-1", self.runtime.clock.now())

    async def ack(self, command_id: Any) -> None:
        now = self.runtime.clock.now()
        await self.deliver(lifecycle_handler(self.runtime.clock, self.settings), CommandAcknowledged(
            command_id=command_id, device_id=POWER, acknowledged_at=now, attempt=1, gateway_id="DTU-1",
            reported_valve_state=None, reply_hex=None), POWER, producer="ingest")

    async def read_back(self, relay: RelayState) -> None:
        await self.deliver(status_handler(self.runtime.clock, self.settings), DeviceStatusReported(
            meter_id=POWER, utility=Utility.ELECTRICITY, reported_at=self.runtime.clock.now(), valve=None, relay=relay,
            battery=None, alarms=(), status_word_hex=None, gateway_id="DTU-1"), POWER, producer="ingest")


def depleted(at: datetime) -> BalanceDepleted:
    return BalanceDepleted(account_id="ACC-1", balance=Decimal("-0.50"), credit_limit=Decimal(0), currency="CNY",
                           depleted_at=at, meters=METERS)


def restored(at: datetime) -> BalanceRestored:
    return BalanceRestored(account_id="ACC-1", balance=Decimal("49.50"), restore_threshold=Decimal(0),
                           currency="CNY", restored_at=at, meters=METERS)


@pytest.fixture
async def worker(database_url: str) -> AsyncIterator[Worker]:
    settings = CommandsSettings(database_url=database_url, time_zone="Asia/Shanghai")
    runtime = build_runtime(settings, "test")
    runtime.clock = FrozenClock(datetime(2026, 11, 18, 10, tzinfo=ZONE))  # a Wednesday
    await runtime.migrate()
    w = Worker(runtime, settings)
    defined: MeterDefined = example_payloads()["MeterDefined"]
    for meter_id, utility, profile, unit in ((WATER, Utility.WATER, "cjt188-water-2004", Unit.M3),
                                             (POWER, Utility.ELECTRICITY, "dlt645-single-phase", Unit.KWH)):
        meter = defined.meter.model_copy(update={"meter_id": meter_id, "utility": utility, "profile": profile,
                                                 "unit": unit})
        await w.deliver(registry_handler(runtime.clock), defined.model_copy(update={
            "meter": meter, "device_key": f"{TENANT}/meter/{meter_id}"}), meter_id, producer="ingest")
    yield w
    await runtime.engine.dispose()


async def test_b2_b3_depletion_trips_only_the_relay_and_payment_restores_it_each_confirmed_by_read_back(
        worker: Worker) -> None:
    await worker.policy(CUT_ELECTRICITY)
    now = worker.runtime.clock.now()
    await worker.balance(depleted(now))
    [trip] = await worker.staged("RelayCommandIssued")
    assert (trip.device_id, trip.action.value, trip.account_id) == (POWER, "trip", "ACC-1")
    assert await worker.staged("ValveCommandIssued") == []  # "cut electricity, not water"
    assert [e.kind.value for e in await worker.staged("CommandDispatched")] == ["relay_trip"]

    await worker.balance(depleted(now))  # billing's event again (a redelivery): nothing new
    assert len(await worker.staged("RelayCommandIssued")) == 1

    worker.at(now + timedelta(seconds=20))
    await worker.ack(trip.command_id)
    assert (await worker.command(trip.command_id)).state is CommandState.ACKNOWLEDGED  # not yet success
    await worker.read_back(RelayState.DISCONNECTED)
    assert (await worker.command(trip.command_id)).state is CommandState.CONFIRMED
    [confirmed] = await worker.staged("CommandConfirmed")
    assert confirmed.command_id == trip.command_id

    worker.at(now + timedelta(hours=3))
    await worker.balance(restored(worker.runtime.clock.now()))
    issued = await worker.staged("RelayCommandIssued")
    assert [i.action.value for i in issued] == ["trip", "close_allowed"]
    await worker.ack(issued[1].command_id)
    await worker.read_back(RelayState.CLOSE_ALLOWED)
    assert (await worker.command(issued[1].command_id)).state is CommandState.CONFIRMED
    async with worker.runtime.sessions() as session:
        logged = [h["event_type"] for h in await store.history(session, TENANT, trip.command_id)]
    assert logged == ["CommandRequested", "CommandScheduled", "CommandDispatched", "RelayCommandIssued",
                      "CommandAcknowledged", "CommandConfirmed"]


async def test_b4_a_depletion_in_a_quiet_window_waits_and_a_payment_before_it_ends_sends_nothing(
        worker: Worker) -> None:
    await worker.policy(NIGHTS_AND_WEEKENDS)
    friday_night = datetime(2026, 11, 20, 23, 10, tzinfo=ZONE)
    worker.at(friday_night)
    await worker.balance(depleted(friday_night))
    [scheduled] = await worker.staged("CommandScheduled")
    assert scheduled.send_at == datetime(2026, 11, 23, 8, tzinfo=ZONE)  # Monday 08:00
    assert await worker.staged("CommandDispatched") == []
    worker.at(datetime(2026, 11, 21, 12, tzinfo=ZONE))
    assert await worker.tick() == 0  # Saturday: still quiet
    worker.at(datetime(2026, 11, 22, 19, tzinfo=ZONE))
    await worker.balance(restored(worker.runtime.clock.now()))  # paid on Sunday evening
    [cancelled] = await worker.staged("CommandCancelled")
    assert (cancelled.command_id, cancelled.reason.value) == (scheduled.command_id, "balance_restored")
    worker.at(datetime(2026, 11, 23, 8, 1, tzinfo=ZONE))
    await worker.tick()
    assert await worker.staged("CommandDispatched") == [] and await worker.staged("RelayCommandIssued") == []


async def test_a_quiet_window_cut_off_goes_out_when_it_ends_and_an_unconfirmed_one_is_resent_then_fails(
        worker: Worker) -> None:
    await worker.policy(NIGHTS_AND_WEEKENDS)
    worker.at(datetime(2026, 11, 18, 22, tzinfo=ZONE))  # Wednesday night
    await worker.balance(depleted(worker.runtime.clock.now()))
    worker.at(datetime(2026, 11, 19, 8, 0, 1, tzinfo=ZONE))
    assert await worker.tick() == 1
    [sent] = await worker.staged("RelayCommandIssued")
    settings = worker.settings.lifecycle
    for attempt in range(1, settings.max_attempts + 1):
        await worker.ack(sent.command_id)  # acknowledged, but the meter never shows the relay open
        worker.at(worker.runtime.clock.now() + settings.confirm_timeout + timedelta(seconds=1))
        await worker.tick()
        if attempt < settings.max_attempts:
            worker.at(worker.runtime.clock.now() + settings.retry_backoff_max)
            await worker.tick()  # the back-off is over: sent again
    dispatched = await worker.staged("CommandDispatched")
    assert [d.attempt for d in dispatched] == list(range(1, settings.max_attempts + 1))
    assert len(await worker.staged("RelayCommandIssued")) == settings.max_attempts  # ingest re-sends each
    [failed] = await worker.staged("CommandFailed")
    [escalated] = await worker.staged("CommandEscalated")
    assert (failed.reason.value, escalated.outcome.value) == ("no_read_back", "failed")
    assert (await worker.command(sent.command_id)).state is CommandState.FAILED


async def test_billing_account_events_open_supply_for_a_new_customer_and_read_then_close_on_move_out(
        worker: Worker) -> None:
    now = worker.runtime.clock.now()
    await worker.deliver(account_handler(worker.runtime.clock, worker.settings), MeterLinkedToAccount(
        account_id="ACC-2", meter_id=WATER, utility=Utility.WATER, tariff_id="water", linked_at=now,
        reason=LinkReason.CONNECTED, previous_account_id=None), "ACC-2")
    [opened] = await worker.staged("ValveCommandIssued")
    assert (opened.device_id, opened.action.value, opened.reason.value) == (WATER, "open", "account_opened")

    worker.at(now + timedelta(days=30))
    await worker.deliver(account_handler(worker.runtime.clock, worker.settings), MeterUnlinkedFromAccount(
        account_id="ACC-2", meter_id=WATER, utility=Utility.WATER, unlinked_at=worker.runtime.clock.now(),
        reason=LinkReason.MOVE_OUT, next_account_id=None), "ACC-2")
    requested = await worker.staged("CommandRequested")
    read, close = requested[-2:]
    assert (read.kind.value, close.kind.value, close.after_command_id) == ("read_now", "valve_close",
                                                                           read.command_id)
    assert [d.kind.value for d in await worker.staged("CommandDispatched")][-1] == "read_now"  # the close waits
    await worker.deliver(lifecycle_handler(worker.runtime.clock, worker.settings), CommandAcknowledged(
        command_id=read.command_id, device_id=WATER, acknowledged_at=worker.runtime.clock.now(), attempt=1,
        gateway_id="DTU-1", reported_valve_state=None, reply_hex=None), WATER, producer="ingest")
    assert (await worker.command(read.command_id)).state is CommandState.CONFIRMED  # completed: the read came
    issued = await worker.staged("ValveCommandIssued")
    assert [(i.action.value, i.command_id) for i in issued][-1] == ("close", close.command_id)
