"""Only registered DTUs may talk, within limits: the gateway on a real socket and PostgreSQL refuses
unknown and retired ids (closed after the login, nothing decoded, a FrameRejected with the login bytes
under the unassigned tenant, a counted and rate-limited log line), drops a link whose gateway is retired
while connected, lets the newer of two sockets with one id win and says it may be a spoof, cuts off
a stream without frames, closes silent links, and caps sockets in all and before login."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.testing import unique
from amiflow_schemas import decode_event
from amiflow_schemas.events.registry import GatewayKind, MaintenanceState
from ingest import registry_app
from ingest.adapters import db, gateway_db
from ingest.config import IngestSettings
from ingest.core.registry import GatewayDetails, MeterDetails
from ingest.gateway.server import DtuGateway
from ingest.main import build_runtime
from ingest.simulator import Fleet, FleetSpec, FlowMeter, MeterKind
from ingest.simulator.bus import cjt188_reading
from ingest.simulator.models import KINDS
from prometheus_client import REGISTRY
from sqlalchemy import select

pytestmark = pytest.mark.integration

STRANGER = b"869999999999999"  # an IMEI-like id no tenant registered


@dataclass
class HeadEnd:
    server: DtuGateway
    runtime: Any
    settings: IngestSettings

    async def connect(self, first: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.settings.gateway_port)
        if first:
            writer.write(first)
            await writer.drain()
        return reader, writer

    async def events(self, event_type: str | None = None) -> list[Any]:
        async with self.runtime.engine.connect() as conn:
            rows = (await conn.execute(select(db.outbox).order_by(db.outbox.c.id))).all()
        found = [decode_event(r.message_value) for r in rows]
        return [e for e in found if event_type is None or e.event_type == event_type]

    def held(self, gateway_id: str = "DTU-1", tenant_id: str = "market") -> bool:
        return (tenant_id, gateway_id) in self.server.links


Start = Callable[..., Awaitable[HeadEnd]]


@pytest.fixture
async def start(postgres_database: Any) -> AsyncIterator[Start]:
    """Starts a gateway with the given settings on a fresh database; DTU-1 (REG-0001) is registered in market."""
    running: list[tuple[asyncio.Task[None], Any]] = []

    async def started(**overrides: Any) -> HeadEnd:
        values = {"gateway_login_timeout_s": 5.0, "gateway_unassigned_tenant": unique("unassigned"), **overrides}
        settings = IngestSettings(database_url=await postgres_database("ingest"), gateway_port=free_port(), **values)
        runtime = build_runtime(settings, "test")
        await runtime.migrate()
        await registry_app.register_gateway(runtime, "market", "DTU-1", GatewayDetails(GatewayKind.DTU, "REG-0001"))
        server = DtuGateway(runtime, settings, instance="test")
        task = asyncio.create_task(server.run())
        running.append((task, runtime))
        await asyncio.wait_for(server.listening.wait(), 10)
        return HeadEnd(server, runtime, settings)

    yield started
    for task, runtime in running:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runtime.engine.dispose()


def counted(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)
    return result


async def closed_by_gateway(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 10) == b""


def a_meter_reply() -> bytes:
    """A valid CJ/T 188 901F reply, as a meter behind some DTU sends it."""
    fleet = Fleet.build(FleetSpec(meters=1, dtus=1, seed=3, prefix="ADM", mix=((MeterKind.WATER, 1),)))
    meter = next(iter(fleet.meters.values()))
    assert isinstance(meter, FlowMeter)
    return cjt188_reading(meter, datetime.now(UTC)).frame


async def test_an_unregistered_dtu_is_refused_after_its_login_and_nothing_it_sends_is_read(
        start: Start, caplog: pytest.LogCaptureFixture) -> None:
    head_end = await start()
    caplog.set_level(logging.WARNING, "ingest.gateway")
    before = counted("amiflow_gateway_refused_total", reason="unregistered")
    registry_events = len(await head_end.events())

    reader, writer = await head_end.connect(STRANGER + b"\r\n" + a_meter_reply())
    assert await closed_by_gateway(reader)

    # The session has ended by the time the socket closes: everything it published is in the outbox.
    [refused] = (await head_end.events())[registry_events:]
    assert refused.event_type == "FrameRejected" and refused.tenant_id == head_end.settings.gateway_unassigned_tenant
    assert bytes.fromhex(refused.payload.raw_hex) == STRANGER
    assert refused.payload.reason.value == "unknown_device"
    assert "unregistered" in refused.payload.detail and "127.0.0.1:" in refused.payload.detail
    assert counted("amiflow_gateway_refused_total", reason="unregistered") == before + 1
    [line] = [r.getMessage() for r in caplog.records if "GatewayLoginRefused" in r.getMessage()]
    assert "reason=unregistered" in line and STRANGER.decode() in line and "remote=127.0.0.1:" in line
    assert not head_end.server.links
    writer.close()


async def test_a_retired_gateway_is_refused_like_an_unknown_one(start: Start) -> None:
    head_end = await start()
    await registry_app.register_gateway(head_end.runtime, "market", "DTU-2",
                                        GatewayDetails(GatewayKind.DTU, "REG-0002"))
    await registry_app.update_gateway(head_end.runtime, "market", "DTU-2", GatewayDetails(
        GatewayKind.DTU, "REG-0002", maintenance=MaintenanceState.RETIRED))
    before = counted("amiflow_gateway_refused_total", reason="retired")

    reader, writer = await head_end.connect(b"REG-0002\r\n")
    assert await closed_by_gateway(reader)

    [refused] = await head_end.events("FrameRejected")
    assert "retired" in refused.payload.detail and "DTU-2" in refused.payload.detail
    assert counted("amiflow_gateway_refused_total", reason="retired") == before + 1
    assert not head_end.held("DTU-2")
    writer.close()


async def test_a_link_is_closed_when_its_gateway_is_retired_while_it_is_connected(start: Start) -> None:
    head_end = await start(gateway_refresh_meters_s=0.2)
    reader, writer = await head_end.connect(b"REG-0001\r\n")
    await eventually(lambda: _now(head_end.held()))
    before = counted("amiflow_gateway_links_closed_total", reason="registration_withdrawn")

    await registry_app.update_gateway(head_end.runtime, "market", "DTU-1", GatewayDetails(
        GatewayKind.DTU, "REG-0001", maintenance=MaintenanceState.RETIRED))

    assert await closed_by_gateway(reader)
    await eventually(lambda: _now(not head_end.held()))
    assert counted("amiflow_gateway_links_closed_total", reason="registration_withdrawn") == before + 1
    writer.close()


async def test_a_failed_standing_check_keeps_the_link_and_the_next_check_still_withdraws_it(start: Start) -> None:
    head_end = await start(gateway_refresh_meters_s=0.2)
    reader, writer = await head_end.connect(b"REG-0001\r\n")
    await eventually(lambda: _now(head_end.held()))
    registered, failures = head_end.server._registered, list[str]()

    async def registry_away(registration_id: str) -> Any:
        if len(failures) < 3:  # the database away for three checks
            failures.append(registration_id)
            raise OSError("connection refused")
        return await registered(registration_id)

    head_end.server._registered = registry_away  # type: ignore[method-assign]
    await eventually(lambda: _now(len(failures) == 3))
    assert head_end.held("DTU-1")  # kept through the outage

    await registry_app.update_gateway(head_end.runtime, "market", "DTU-1", GatewayDetails(
        GatewayKind.DTU, "REG-0001", maintenance=MaintenanceState.RETIRED))
    assert await closed_by_gateway(reader)  # the check went on after the failures
    writer.close()


async def test_refusals_past_the_per_minute_budget_are_counted_but_neither_logged_nor_kept(
        start: Start, caplog: pytest.LogCaptureFixture) -> None:
    head_end = await start(gateway_refusal_reports_per_minute=2)
    caplog.set_level(logging.WARNING, "ingest.gateway")
    before = counted("amiflow_gateway_refused_total", reason="unregistered")

    for attempt in range(5):
        reader, writer = await head_end.connect(f"FLOOD-{attempt}\r\n".encode())
        assert await closed_by_gateway(reader)
        writer.close()

    kept = await head_end.events("FrameRejected")
    assert [bytes.fromhex(e.payload.raw_hex) for e in kept] == [b"FLOOD-0", b"FLOOD-1"]
    assert len([r for r in caplog.records if "GatewayLoginRefused" in r.getMessage()]) == 2
    assert counted("amiflow_gateway_refused_total", reason="unregistered") == before + 5


async def test_commissioning_holds_an_unknown_dtu_whose_bytes_are_only_reported_until_it_is_registered(
        start: Start) -> None:
    head_end = await start(gateway_accept_unregistered=True, gateway_refresh_meters_s=0.2)
    unassigned = head_end.settings.gateway_unassigned_tenant
    reader, writer = await head_end.connect(STRANGER + b"\r\n" + a_meter_reply())

    [reported] = await eventually(lambda: head_end.events("FrameRejected"))
    assert head_end.held(f"unregistered-{STRANGER.decode()}", unassigned)
    assert reported.tenant_id == unassigned and reported.payload.source_id == f"unregistered-{STRANGER.decode()}"
    assert reported.payload.reason.value == "unknown_device" and reported.payload.meter_id is None
    assert not await head_end.events("ReadingReceived")

    # Registered meanwhile: the commissioning link closes, so that the DTU logs in again as what it is.
    await registry_app.register_gateway(head_end.runtime, "market", "DTU-9",
                                        GatewayDetails(GatewayKind.DTU, STRANGER.decode()))
    assert await closed_by_gateway(reader)
    writer.close()
    reader, writer = await head_end.connect(STRANGER + b"\r\n")
    await eventually(lambda: _now(head_end.held("DTU-9")))
    writer.close()


async def test_a_second_login_of_a_connected_id_wins_and_is_logged_as_a_possible_spoof(
        start: Start, caplog: pytest.LogCaptureFixture) -> None:
    head_end = await start()
    caplog.set_level(logging.WARNING, "ingest.gateway")
    taken = counted("amiflow_gateway_takeovers_total", address="same")
    closed = counted("amiflow_gateway_links_closed_total", reason="taken_over")
    old_reader, old_writer = await head_end.connect(b"REG-0001\r\n")
    await eventually(lambda: _now(head_end.held()))
    first = head_end.server.links[("market", "DTU-1")]

    _new_reader, new_writer = await head_end.connect(b"REG-0001\r\n")

    assert await closed_by_gateway(old_reader)
    await eventually(lambda: _now(head_end.held() and head_end.server.links[("market", "DTU-1")] is not first))
    [line] = [r.getMessage() for r in caplog.records if "GatewayLinkTakenOver" in r.getMessage()]
    assert "possible spoof" in line and "DTU-1" in line and first.remote in line
    assert counted("amiflow_gateway_takeovers_total", address="same") == taken + 1
    assert counted("amiflow_gateway_links_closed_total", reason="taken_over") == closed + 1
    old_writer.close()
    new_writer.close()


async def test_a_link_sending_bytes_without_a_valid_frame_is_cut_off_and_a_valid_frame_refills_its_allowance(
        start: Start) -> None:
    head_end = await start(gateway_max_bytes_without_frame=1024)
    before = counted("amiflow_gateway_links_closed_total", reason="no_valid_frame")
    reader, writer = await head_end.connect(b"REG-0001\r\n" + b"\x00" * 800 + a_meter_reply() + b"\x00" * 800)
    await eventually(lambda: _now(head_end.held()))

    writer.write(b"\x00" * 300)
    await writer.drain()

    assert await closed_by_gateway(reader)
    rejected = await head_end.events("FrameRejected")
    [cut] = [e for e in rejected if "cut off" in e.payload.detail]
    # 800 + 300: the reply between the two runs of zeros set the count back, or the link would have gone at 1600.
    assert "1100 bytes without a valid frame" in cut.payload.detail
    assert cut.tenant_id == "market" and cut.payload.source_id == "DTU-1"
    assert counted("amiflow_gateway_links_closed_total", reason="no_valid_frame") == before + 1
    writer.close()


async def test_a_login_that_never_completes_within_its_window_is_refused(start: Start) -> None:
    head_end = await start()
    before = counted("amiflow_gateway_refused_total", reason="login_too_long")
    endless_376 = bytes.fromhex("68823E823E68") + b"\x01" * 600  # declares 4000 user bytes, sends on and on

    reader, writer = await head_end.connect(endless_376)

    assert await closed_by_gateway(reader)
    [refused] = await head_end.events("FrameRejected")
    assert "without a complete registration packet" in refused.payload.detail
    assert counted("amiflow_gateway_refused_total", reason="login_too_long") == before + 1
    writer.close()


async def test_a_link_silent_past_the_idle_timeout_is_closed_and_recorded_offline(start: Start) -> None:
    head_end = await start(gateway_idle_timeout_s=0.5)
    before = counted("amiflow_gateway_links_closed_total", reason="idle")

    reader, writer = await head_end.connect(b"REG-0001\r\n")

    assert await closed_by_gateway(reader)
    assert counted("amiflow_gateway_links_closed_total", reason="idle") == before + 1

    async def offline() -> bool:
        async with head_end.runtime.sessions() as session:
            state = await gateway_db.connection(session, "market", "DTU-1")
        return bool(state) and not state["online"]

    await eventually(offline)
    writer.close()


async def test_sockets_beyond_the_gateway_wide_cap_are_refused_and_a_freed_slot_takes_a_dtu_again(
        start: Start) -> None:
    head_end = await start(gateway_max_connections=2, gateway_login_timeout_s=60.0)
    before = counted("amiflow_gateway_refused_total", reason="gateway_full")
    first = await head_end.connect()
    second = await head_end.connect()

    third_reader, third_writer = await head_end.connect(b"REG-0001\r\n")

    assert await closed_by_gateway(third_reader)
    assert counted("amiflow_gateway_refused_total", reason="gateway_full") == before + 1
    assert not head_end.held()
    first[1].close()
    await eventually(lambda: _now(head_end.server.occupancy.total == 1))
    _reader, writer = await head_end.connect(b"REG-0001\r\n")
    await eventually(lambda: _now(head_end.held()))
    for w in (second[1], third_writer, writer):
        w.close()


async def test_sockets_that_have_not_logged_in_are_capped_apart_from_the_links_that_did(start: Start) -> None:
    head_end = await start(gateway_max_pending_logins=2, gateway_login_timeout_s=60.0)
    before = counted("amiflow_gateway_refused_total", reason="too_many_pending_logins")
    _dtu_reader, dtu_writer = await head_end.connect(b"REG-0001\r\n")
    await eventually(lambda: _now(head_end.held()))
    silent = [await head_end.connect() for _ in range(2)]
    await eventually(lambda: _now(head_end.server.occupancy.pending == 2))

    reader, writer = await head_end.connect()

    assert await closed_by_gateway(reader)
    assert counted("amiflow_gateway_refused_total", reason="too_many_pending_logins") == before + 1
    assert head_end.held()  # the logged-in DTU keeps its link through the flood
    for w in (dtu_writer, writer, *(w for _, w in silent)):
        w.close()


async def _now(value: bool) -> bool:
    return value


async def test_a_simulated_dtu_nobody_registered_is_refused_on_the_rejected_frames_topic_while_the_fleet_is_read(
        kafka_bootstrap: str, postgres_database: Any) -> None:
    tenant, unassigned = unique("admitted"), unique("unassigned")
    settings = IngestSettings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, database_url=await postgres_database("ingest"),
                              gateway_port=free_port(), gateway_poll_on_login=True, gateway_min_gap_s=0.05,
                              gateway_unassigned_tenant=unassigned)
    runtime = build_runtime(settings, "worker")
    gateway = DtuGateway(runtime, settings, instance="admission-test")
    water = ((MeterKind.WATER, 1),)
    fleet = Fleet.build(FleetSpec(meters=3, dtus=1, seed=5, prefix=tenant.upper(), tenant=tenant, mix=water))
    stranger = Fleet.build(FleetSpec(meters=2, dtus=1, seed=6, prefix="STRANGER", tenant=tenant, mix=water))
    [outsider] = stranger.dtus.values()
    readings = Topic(kafka_bootstrap, "amiflow.ingest.readings", tenant)
    rejected = Topic(kafka_bootstrap, "amiflow.ingest.rejected-frames", unassigned)
    await runtime.start([], [gateway.run])
    try:
        await asyncio.wait_for(gateway.listening.wait(), 30)
        await register(runtime, tenant, fleet)
        for topic in (readings, rejected):
            await topic.consumer.start()
        for simulated in (fleet, stranger):
            await simulated.start("127.0.0.1", settings.gateway_port)
        arrived = await readings.until(lambda got: {e.payload.meter_id for e in got} == set(fleet.meters))
        [refusal, *_] = await rejected.until(lambda got: len(got) >= 1)
    finally:
        for simulated in (fleet, stranger):
            await simulated.stop()
        for topic in (readings, rejected):
            await topic.consumer.stop()
        await runtime.stop()
        await runtime.engine.dispose()

    assert bytes.fromhex(refusal.payload.raw_hex) == outsider.registration_id.encode()
    assert "unregistered" in refusal.payload.detail and refusal.payload.reason.value == "unknown_device"
    assert outsider.stats.logins >= 1 and len(stranger.ledger) == 0  # it said its id; nothing was asked of its bus
    assert not {e.payload.meter_id for e in arrived} & set(stranger.meters)


class Topic:
    """One tenant's events on a topic, read from the start by a group-less consumer."""

    def __init__(self, bootstrap: str, name: str, tenant: str) -> None:
        self.consumer = AIOKafkaConsumer(name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                         group_id=None, enable_auto_commit=False)
        self.tenant = tenant
        self.events: list[Any] = []

    async def until(self, enough: Callable[[list[Any]], bool], timeout: float = 120.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while not enough(self.events):
                for messages in (await self.consumer.getmany(timeout_ms=300)).values():
                    found = (decode_event(m.value) for m in messages)
                    self.events += [e for e in found if e.tenant_id == self.tenant]
        return self.events


async def register(runtime: Any, tenant: str, fleet: Fleet) -> None:
    """The fleet's DTUs and meters, straight into the registry."""
    for dtu in fleet.dtus.values():
        await registry_app.register_gateway(runtime, tenant, dtu.dtu_id,
                                            GatewayDetails(GatewayKind.DTU, dtu.registration_id))
        for meter in dtu.meters:
            facts = KINDS[meter.spec.kind]
            await registry_app.register_meter(runtime, tenant, meter.meter_id, MeterDetails(
                facts.utility, facts.profile, meter.bus_address, facts.unit, gateway_id=dtu.dtu_id))
