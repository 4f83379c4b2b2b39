"""The simulator's fleet against the real gateway, broker and PostgreSQL: 200 meters on 10 DTUs are
polled and every reading arrives as exactly one ReadingReceived — including the backlog of a DTU that
drops mid-poll — and a valve command reaches its meter, whose next status shows the valve closed (on the
device-status topic and in the registry API's view of the meter)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.service import Subscription
from amiflow_runtime.testing import asgi_client, unique
from amiflow_schemas import decode_event, encode_event, envelope_headers, new_envelope
from amiflow_schemas.events.commands import CommandReason, ValveAction, ValveCommandIssued
from amiflow_schemas.primitives import ValveState
from ingest.config import IngestSettings
from ingest.gateway.downlink import on_command
from ingest.gateway.server import DtuGateway
from ingest.main import COMMANDS, api, build_runtime
from ingest.simulator.fleet import Fleet, FleetSpec

pytestmark = pytest.mark.integration


class Topic:
    """Everything of one tenant on a topic, read from the start by a group-less consumer."""

    def __init__(self, bootstrap: str, name: str, tenant: str) -> None:
        self.consumer = AIOKafkaConsumer(name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                         group_id=None, enable_auto_commit=False)
        self.tenant = tenant
        self.events: list[Any] = []

    async def until(self, enough: Any, timeout: float = 120.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while not enough(self.events):
                batches = await self.consumer.getmany(timeout_ms=300)
                for messages in batches.values():
                    for message in messages:
                        event = decode_event(message.value)
                        if event.tenant_id == self.tenant:
                            self.events.append(event)
        return self.events


@pytest.fixture
async def head_end(kafka_bootstrap: str, postgres_database: Any) -> AsyncIterator[dict[str, Any]]:
    tenant = unique("fleet")
    settings = IngestSettings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, database_url=await postgres_database("ingest"),
                              gateway_port=free_port(), gateway_min_gap_s=0.05, gateway_reply_timeout_s=3.0,
                              gateway_poll_on_login=True)
    runtime = build_runtime(settings, "worker")
    gateway = DtuGateway(runtime, settings, instance="fleet-test")
    await runtime.start([Subscription(f"ingest.downlink.{tenant}", [COMMANDS], on_command)], [gateway.run])
    await asyncio.wait_for(gateway.listening.wait(), 30)
    fleet = Fleet.build(FleetSpec(meters=200, dtus=10, seed=7, prefix=tenant.upper(), tenant=tenant,
                                  leak_rate=0.05, low_battery_rate=0.05))
    registry_app = api(settings)
    async with asgi_client(registry_app, "http://ingest") as http:
        await fleet.register("http://ingest", client=http)
    await registry_app.state.runtime.engine.dispose()
    readings, statuses, lifecycle = (Topic(kafka_bootstrap, name, tenant) for name in (
        "amiflow.ingest.readings", "amiflow.ingest.device-status", "amiflow.commands.lifecycle"))
    for topic in (readings, statuses, lifecycle):
        await topic.consumer.start()
    yield {"fleet": fleet, "settings": settings, "tenant": tenant, "readings": readings, "statuses": statuses,
           "lifecycle": lifecycle, "bootstrap": kafka_bootstrap}
    await fleet.stop()
    for topic in (readings, statuses, lifecycle):
        await topic.consumer.stop()
    await runtime.stop()


async def test_every_polled_reading_arrives_exactly_once_even_across_a_mid_poll_drop(head_end: dict[str, Any]) -> None:
    fleet: Fleet = head_end["fleet"]
    dropping = fleet.dtu(sorted(fleet.dtus)[3])
    dropping.drop_next_poll(offline_s=2.0)
    await fleet.start("127.0.0.1", head_end["settings"].gateway_port)

    async def settled() -> None:
        # Every DTU is polled on each login (the dropping one twice); wait until every meter answered,
        # the backlog went up, and the ledger has stopped growing.
        last, still = -1, 0
        while still < 10:
            await asyncio.sleep(0.3)
            done = dropping.stats.backlog_sent >= 1 and len({d.meter_id for d in fleet.ledger.readings()}) == 200
            count = len(fleet.ledger)
            still = still + 1 if done and count == last else 0
            last = count

    await asyncio.wait_for(settled(), 120)
    expected = fleet.ledger.distinct_readings()
    events = await head_end["readings"].until(lambda got: len(got) >= len(expected))
    await asyncio.sleep(2)  # a duplicate would arrive by now
    events = await head_end["readings"].until(lambda got: True, timeout=5)

    keys = Counter((e.payload.meter_id, e.payload.measured_at) for e in events)
    assert max(keys.values()) == 1, "a reading was published twice"
    assert len(events) == len(expected)
    assert {e.payload.meter_id for e in events} == set(fleet.meters)  # every meter was read
    clocked = {(d.meter_id, d.measured_at): d for d in expected if d.measured_at is not None}
    by_key = {(e.payload.meter_id, e.payload.measured_at): e for e in events}
    for key, delivery in clocked.items():
        published = by_key[key].payload
        assert {r.register: r.value for r in published.registers} == delivery.values
        assert published.source.value == "dtu" and published.frame_hex
    backlogged = [d for d in expected if d.backlogged]
    assert backlogged and all((d.meter_id, d.measured_at) in by_key for d in backlogged if d.measured_at)


async def test_a_valve_command_reaches_the_meter_and_its_next_status_shows_it_closed(
        head_end: dict[str, Any]) -> None:
    fleet: Fleet = head_end["fleet"]
    await fleet.start("127.0.0.1", head_end["settings"].gateway_port)
    await fleet.wait_online(60)
    meter = next(m for m in fleet.valve_meters() if m.has_valve)
    assert meter.valve_state is ValveState.OPEN
    command = ValveCommandIssued(
        command_id=uuid.uuid4(), device_id=meter.meter_id, reason=CommandReason.OPERATOR, requested_by="op-1",
        account_id=None, issued_at=_now(), not_before=None, expires_at=_now() + timedelta(minutes=10),
        action=ValveAction.CLOSE)
    envelope = new_envelope(command, event_id=uuid.uuid4(), tenant_id=head_end["tenant"], key=meter.meter_id,
                            occurred_at=command.issued_at, recorded_at=command.issued_at, producer="commands")
    producer = AIOKafkaProducer(bootstrap_servers=head_end["bootstrap"], enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(COMMANDS, encode_event(envelope), key=meter.meter_id.encode(),
                                     headers=envelope_headers(envelope))
    finally:
        await producer.stop()

    lifecycle = await head_end["lifecycle"].until(
        lambda got: any(e.event_type == "CommandAcknowledged" for e in got), timeout=60)
    [ack] = [e for e in lifecycle if e.event_type == "CommandAcknowledged"]
    assert ack.payload.command_id == command.command_id and ack.payload.device_id == meter.meter_id
    assert meter.valve_state is ValveState.CLOSED
    statuses = await head_end["statuses"].until(lambda got: any(
        e.payload.meter_id == meter.meter_id and e.payload.valve is ValveState.CLOSED for e in got), timeout=60)
    closed = [e for e in statuses if e.payload.meter_id == meter.meter_id and e.payload.valve is ValveState.CLOSED]
    assert closed[-1].occurred_at >= ack.payload.acknowledged_at - timedelta(minutes=5)
    registry_app = api(head_end["settings"])  # the console's view: the status was kept where it was published
    async with asgi_client(registry_app, "http://ingest", tenant=head_end["tenant"]) as http:
        shown = (await http.get(f"/v1/meters/{meter.meter_id}")).json()
    await registry_app.state.runtime.engine.dispose()
    assert (shown["device_status"]["valve"], shown["online"], shown["link_gateway_id"]) == (
        "closed", True, fleet.dtu_of(meter.meter_id).dtu_id)
    assert shown["location"] is not None and shown["room"]  # the simulated fleet stands somewhere


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
