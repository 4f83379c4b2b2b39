"""Remote commands through the real gateway to a simulated DTU and its meters, on SQLite and PostgreSQL.

Commands enter through the consumer's real pipeline (decode, inbox, handler), as if read from
amiflow.commands.lifecycle. A retried relay trip is sent and acknowledged again in one mailbox row.
A read-now publishes the meter's reading and is acknowledged. A DL/T 645 time sync is acknowledged
after its broadcast, and a CJ/T 188 one by the meter's reply; both set the meters' clocks in the
tenant's zone. A parameter write fails with the reason.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from amiflow_runtime.deadletter import ConsumedRecord, DeadLetters
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.pipeline import EventPipeline
from amiflow_runtime.service import ServiceRuntime
from amiflow_runtime.testing import asgi_client, unique
from amiflow_schemas import Envelope, decode_event, encode_event, envelope_headers, new_envelope
from amiflow_schemas.events.commands import (
    CommandDispatched,
    CommandKind,
    CommandReason,
    FailureReason,
    ParameterSetting,
    RelayAction,
    RelayCommandIssued,
    ValveAction,
    ValveCommandIssued,
)
from amiflow_schemas.primitives import RelayState
from ingest.adapters import db
from ingest.adapters.gateway_db import downlink_commands
from ingest.config import IngestSettings
from ingest.core.protocols import decode_frame
from ingest.gateway.downlink import on_command
from ingest.gateway.server import DtuGateway
from ingest.main import COMMANDS, api, build_runtime
from ingest.simulator import DtuBehaviour, Fleet, FleetSpec, MeterKind, ReplyKind
from ingest.simulator.models import SimMeter
from sqlalchemy import select

pytestmark = pytest.mark.integration

FAST = DtuBehaviour(bus_delay_s=(0.001, 0.003), backoff_s=(0.05, 0.1))
SET = timedelta(seconds=3)  # a clock set from a whole-second wall time, read a moment later


class Unexpected(DeadLetters):
    """A dead-letter port that keeps what it is given: a poisoned command would show up here."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def publish(self, record: ConsumedRecord, reason: str, kind: str, now: datetime) -> None:
        self.reasons.append(f"{kind}: {reason}")


@dataclass
class HeadEnd:
    runtime: ServiceRuntime
    fleet: Fleet
    tenant: str
    pipeline: EventPipeline
    dead_letters: Unexpected
    offset: int = 0

    async def send(self, payload: Any) -> Envelope[Any]:
        """Publish a lifecycle event as the commands service does (a new event id every time)."""
        envelope = new_envelope(payload, event_id=uuid.uuid4(), tenant_id=self.tenant, key=payload.device_id,
                                occurred_at=now(), recorded_at=now(), producer="commands")
        await self.consume(envelope)
        return envelope

    async def consume(self, envelope: Envelope[Any]) -> None:
        self.offset += 1
        record = ConsumedRecord(topic=COMMANDS, partition=0, offset=self.offset, key=envelope.key.encode(),
                                value=encode_event(envelope), headers=envelope_headers(envelope))
        await self.pipeline.apply(record)
        assert self.dead_letters.reasons == []

    async def published(self, event_type: str, where: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        async with self.runtime.engine.connect() as conn:
            rows = (await conn.execute(select(db.outbox.c.message_value).order_by(db.outbox.c.id))).all()
        events = (decode_event(row.message_value) for row in rows)
        return [e for e in events if e.event_type == event_type and e.tenant_id == self.tenant and where(e.payload)]

    async def until(self, event_type: str, where: Callable[[Any], bool], count: int = 1,
                    timeout: float = 30.0) -> list[Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found := await self.published(event_type, where)) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(found)} of {count} {event_type} published within {timeout:.0f} s")
            await asyncio.sleep(0.05)
        return found

    async def mailbox(self, command_id: uuid.UUID) -> list[Any]:
        async with self.runtime.engine.connect() as conn:
            return list((await conn.execute(select(downlink_commands).where(
                downlink_commands.c.command_id == str(command_id)))).all())


@pytest.fixture
async def head_end(database_url: str) -> AsyncIterator[HeadEnd]:
    tenant = unique("cmds")
    # The platform zone is UTC and the tenant's zone is Shanghai. A clock set in the wrong zone would
    # be eight hours off.
    settings = IngestSettings(database_url=database_url, gateway_port=free_port(), gateway_min_gap_s=0.01,
                              gateway_reply_timeout_s=1.0, gateway_retries=1, time_zone="UTC",
                              tenant_time_zones={tenant: "Asia/Shanghai"})
    runtime = build_runtime(settings, "test")
    await runtime.migrate()
    # Meters registered as push are never polled. Every frame on the bus then comes from a command
    # or from its read-back. Every meter clock drifts by 30 to 240 s.
    fleet = Fleet.build(FleetSpec(meters=4, dtus=1, seed=11, prefix=tenant.upper(), tenant=tenant,
                                  mix=((MeterKind.WATER, 2), (MeterKind.ELECTRICITY, 2)), drift_rate=1.0,
                                  schedule="push", time_zone="Asia/Shanghai", behaviour=FAST))
    registry = api(settings)
    async with asgi_client(registry, "http://ingest") as http:
        await fleet.register("http://ingest", client=http)
    await registry.state.runtime.engine.dispose()
    gateway = DtuGateway(runtime, settings, instance="commands-test")
    server = asyncio.create_task(gateway.run())
    await asyncio.wait_for(gateway.listening.wait(), 10)
    await fleet.start("127.0.0.1", settings.gateway_port)
    await fleet.wait_online(30)
    dead_letters = Unexpected()
    pipeline = EventPipeline(consumer="ingest.downlink", sessions=runtime.sessions, inbox=db.inbox,
                             outbox=db.outbox, handler=on_command, dead_letters=dead_letters, clock=runtime.clock)
    yield HeadEnd(runtime, fleet, tenant, pipeline, dead_letters)
    await fleet.stop()
    server.cancel()
    await asyncio.gather(server, return_exceptions=True)
    await runtime.engine.dispose()


def now() -> datetime:
    return datetime.now(UTC)


def dispatched(meter: SimMeter, kind: CommandKind, parameter: ParameterSetting | None = None) -> CommandDispatched:
    return CommandDispatched(command_id=uuid.uuid4(), device_id=meter.meter_id, kind=kind, parameter=parameter,
                             attempt=1, dispatched_at=now(), expires_at=now() + timedelta(minutes=10))


def of(command_id: uuid.UUID) -> Callable[[Any], bool]:
    return lambda payload: payload.command_id == command_id


def frames(fleet: Fleet, meter: SimMeter, kind: ReplyKind) -> list[Any]:
    return [d for d in fleet.ledger.for_meter(meter.meter_id) if d.kind is kind]


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)


async def test_a_retried_relay_trip_is_sent_and_acknowledged_again_in_one_mailbox_row(head_end: HeadEnd) -> None:
    meter = head_end.fleet.relay_meters()[0]
    trip = RelayCommandIssued(command_id=uuid.uuid4(), device_id=meter.meter_id, reason=CommandReason.OPERATOR,
                              requested_by="op-1", account_id=None, issued_at=now(), not_before=None,
                              expires_at=now() + timedelta(minutes=10), action=RelayAction.TRIP)
    await head_end.send(trip)
    await head_end.until("CommandAcknowledged", of(trip.command_id))
    assert meter.relay is RelayState.DISCONNECTED and len(frames(head_end.fleet, meter, ReplyKind.RELAY)) == 1

    # The read-back did not convince the commands service: it sends the same command id again.
    retry = await head_end.send(trip.model_copy(update={"issued_at": now()}))
    acks = await head_end.until("CommandAcknowledged", of(trip.command_id), count=2)

    assert [a.payload.attempt for a in acks] == [1, 1]  # each send counts its own bus attempts
    assert len(frames(head_end.fleet, meter, ReplyKind.RELAY)) == 2  # the meter obeyed a second 1C frame
    [row] = await head_end.mailbox(trip.command_id)
    assert row.state == "acknowledged" and row.kind == "relay" and row.action == "trip"
    assert row.detail.startswith("re-send; the previous send ended acknowledged after 1 bus attempt(s)")

    await head_end.consume(retry)  # the broker delivering the retry again: the inbox drops it
    [row] = await head_end.mailbox(trip.command_id)
    assert row.state == "acknowledged"


async def test_a_second_send_of_a_command_still_waiting_only_moves_its_deadline(head_end: HeadEnd) -> None:
    facts = {"command_id": uuid.uuid4(), "device_id": "NOT-BEHIND-ANY-DTU", "reason": CommandReason.OPERATOR,
             "requested_by": "op-1", "account_id": None, "issued_at": now(), "not_before": None,
             "expires_at": now() + timedelta(minutes=10)}
    await head_end.send(ValveCommandIssued(**facts, action=ValveAction.CLOSE))
    later = now() + timedelta(minutes=30)
    await head_end.send(ValveCommandIssued(**{**facts, "expires_at": later}, action=ValveAction.CLOSE))

    [row] = await head_end.mailbox(facts["command_id"])
    assert (row.state, row.attempts, row.detail) == ("pending", 0, None)
    assert row.expires_at == later


async def test_a_dispatched_valve_command_is_left_to_its_valve_command_issued(head_end: HeadEnd) -> None:
    meter = head_end.fleet.valve_meters()[0]
    close = dispatched(meter, CommandKind.VALVE_CLOSE)
    await head_end.send(close)
    assert await head_end.mailbox(close.command_id) == []


async def test_read_now_publishes_the_reading_as_a_poll_would_and_is_acknowledged(head_end: HeadEnd) -> None:
    meter = head_end.fleet.valve_meters()[0]
    read = dispatched(meter, CommandKind.READ_NOW)
    await head_end.send(read)

    [ack] = await head_end.until("CommandAcknowledged", of(read.command_id))
    [answer] = frames(head_end.fleet, meter, ReplyKind.READING)  # the meter was read once, by the command
    [reading] = await head_end.published("ReadingReceived", lambda p: p.meter_id == meter.meter_id)
    assert {r.register: r.value for r in reading.payload.registers} == answer.values
    assert reading.payload.measured_at == answer.measured_at and reading.payload.source.value == "dtu"
    assert ack.payload.reply_hex == reading.payload.frame_hex and ack.payload.attempt == 1
    assert await head_end.published("DeviceStatusReported", lambda p: p.meter_id == meter.meter_id)
    [row] = await head_end.mailbox(read.command_id)
    assert (row.kind, row.action, row.state) == ("read_now", None, "acknowledged")


async def test_read_now_of_a_silent_meter_fails_with_no_reply_after_three_sends(head_end: HeadEnd) -> None:
    meter = head_end.fleet.valve_meters()[1]
    del head_end.fleet.dtu_of(meter.meter_id).bus.meters[meter.bus_address]  # gone from the bus: silence
    read = dispatched(meter, CommandKind.READ_NOW)
    await head_end.send(read)

    [failed] = await head_end.until("CommandFailed", of(read.command_id), timeout=60)
    assert failed.payload.reason is FailureReason.NO_REPLY and failed.payload.attempts == 3
    assert await head_end.published("ReadingReceived", lambda p: p.meter_id == meter.meter_id) == []


async def test_a_dlt645_time_sync_is_broadcast_and_acknowledged_once_sent(head_end: HeadEnd) -> None:
    target, neighbour = head_end.fleet.relay_meters()
    water = head_end.fleet.valve_meters()[0]
    water_drift = water.drift
    assert abs(target.drift) >= timedelta(seconds=30) and abs(neighbour.drift) >= timedelta(seconds=30)
    sync = dispatched(target, CommandKind.TIME_SYNC)
    await head_end.send(sync)

    [ack] = await head_end.until("CommandAcknowledged", of(sync.command_id))
    assert ack.payload.reply_hex is None and ack.payload.attempt == 1  # a broadcast gets no reply
    # Set in the tenant's zone, and on every DL/T 645 meter of the bus: the broadcast addresses them all.
    await eventually(lambda: abs(target.drift) < SET and abs(neighbour.drift) < SET)
    assert water.drift == water_drift  # CJ/T 188 meters ignore a DL/T 645 broadcast
    assert frames(head_end.fleet, target, ReplyKind.TIME_SET) == []


async def test_a_cjt188_time_sync_writes_a015_and_is_acknowledged_by_the_meters_reply(head_end: HeadEnd) -> None:
    meter, other = head_end.fleet.valve_meters()
    other_drift = other.drift
    assert abs(meter.drift) >= timedelta(seconds=30)
    sync = dispatched(meter, CommandKind.TIME_SYNC)
    await head_end.send(sync)

    [ack] = await head_end.until("CommandAcknowledged", of(sync.command_id))
    reply = decode_frame(bytes.fromhex(ack.payload.reply_hex))
    assert (reply.control, reply.data_id, reply.address) == (0x84, "A015", meter.bus_address)
    assert abs(meter.drift) < SET and other.drift == other_drift
    # The read-back's 901F carries the meter clock: its status shows the drift gone.
    [status] = await head_end.until("DeviceStatusReported", lambda p: p.meter_id == meter.meter_id)
    assert status.payload.clock_drift_s is not None and abs(status.payload.clock_drift_s) <= SET.total_seconds()


async def test_set_parameter_fails_because_no_profile_defines_a_parameter_write(head_end: HeadEnd) -> None:
    meter = head_end.fleet.valve_meters()[0]
    write = dispatched(meter, CommandKind.SET_PARAMETER, ParameterSetting(name="report_period", value="3600"))
    await head_end.send(write)

    [failed] = await head_end.until("CommandFailed", of(write.command_id))
    assert failed.payload.reason is FailureReason.DEVICE_REJECTED and failed.payload.attempts == 0
    assert "no parameter write is defined for profile cjt188-water-2004" in failed.payload.detail
    assert "'report_period'" in failed.payload.detail
    [row] = await head_end.mailbox(write.command_id)
    assert (row.kind, row.parameter_name, row.parameter_value, row.state) == (
        "set_parameter", "report_period", "3600", "failed")
    assert head_end.fleet.ledger.for_meter(meter.meter_id) == []  # nothing went on the bus
