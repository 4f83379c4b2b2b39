"""Virtual DTUs against a minimal head-end on a local socket: login line first, one reply per request,
silence for unknown addresses, heartbeats when idle, pushes, reconnects, and store-and-forward — a
reply lost to a mid-poll drop is delivered exactly once, right after the next login."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest
from amiflow_schemas.events.commands import ValveAction
from amiflow_schemas.primitives import ValveState
from ingest.core.protocols import DecodedFrame, StreamSplitter, WireFrame, cjt188_read, cjt188_valve, decode_frame
from ingest.simulator import DtuBehaviour, Fleet, FleetSpec, FlowMeter, MeterKind, VirtualDtu

FAST = DtuBehaviour(bus_delay_s=(0.001, 0.003), backoff_s=(0.05, 0.1))


class Session:
    """One DTU connection as the head-end sees it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.splitter = StreamSplitter()
        self.pending: list[bytes] = []
        self.buffer = b""

    async def login(self) -> str:
        while b"\r\n" not in self.buffer:
            self.buffer += await asyncio.wait_for(self.reader.read(4096), 5)
        line, _, rest = self.buffer.partition(b"\r\n")
        self.buffer = b""
        self._take(rest)
        return line.decode()

    def _take(self, data: bytes) -> None:
        self.pending += [item.raw for item in self.splitter.feed(data) if isinstance(item, WireFrame)]

    async def frames(self, count: int, timeout: float = 5.0) -> list[DecodedFrame]:
        async with asyncio.timeout(timeout):
            while len(self.pending) < count:
                data = await self.reader.read(4096)
                assert data, "the DTU closed the link"
                self._take(data)
        taken, self.pending = self.pending[:count], self.pending[count:]
        return [decode_frame(raw) for raw in taken]

    async def ask(self, request: bytes) -> DecodedFrame:
        self.writer.write(request)
        await self.writer.drain()
        [reply] = await self.frames(1)
        return reply

    async def silent(self, seconds: float = 0.2) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.read(4096), seconds)
        except TimeoutError:
            return b""


class HeadEnd:
    def __init__(self) -> None:
        self.sessions: asyncio.Queue[Session] = asyncio.Queue()
        self.port = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.sessions.put(Session(reader, writer))

    async def next(self) -> Session:
        session = await asyncio.wait_for(self.sessions.get(), 5)
        return session


@pytest.fixture
async def head_end() -> AsyncIterator[HeadEnd]:
    end = HeadEnd()
    server = await asyncio.start_server(end._accept, "127.0.0.1", 0)
    end.port = server.sockets[0].getsockname()[1]
    yield end
    server.close()


@pytest.fixture
async def fleet(head_end: HeadEnd) -> AsyncIterator[Fleet]:
    built = Fleet.build(FleetSpec(meters=4, dtus=1, seed=7, behaviour=FAST,
                                  mix=((MeterKind.WATER, 3), (MeterKind.ELECTRICITY, 1))))
    yield built
    await built.stop()


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached in time")


def water_meter(fleet: Fleet) -> FlowMeter:
    return fleet.valve_meters()[0]


async def test_the_dtu_logs_in_with_its_registration_line_and_answers_polls(head_end: HeadEnd, fleet: Fleet) -> None:
    await fleet.start("127.0.0.1", head_end.port)
    session = await head_end.next()
    dtu = fleet.dtu("SIM-DTU-0001")
    meter = water_meter(fleet)

    assert await session.login() == dtu.registration_id
    reply = await session.ask(b"\xfe\xfe" + cjt188_read(meter.bus_address))
    await fleet.wait_online()

    assert reply.address == meter.bus_address and reply.data_id == "901F"
    [delivery] = fleet.ledger
    assert (delivery.meter_id, delivery.dtu_id, delivery.backlogged, delivery.pushed) == (meter.meter_id, dtu.dtu_id,
                                                                                          False, False)
    assert delivery.frame_hex.endswith(reply.raw_hex) and delivery.measured_at is not None
    assert fleet.summary().requests_answered == 1 and fleet.summary().connected == 1


async def test_an_address_nobody_has_gets_silence(head_end: HeadEnd, fleet: Fleet) -> None:
    await fleet.start("127.0.0.1", head_end.port)
    session = await head_end.next()
    await session.login()
    session.writer.write(cjt188_read("02019999999999"))

    assert await session.silent() == b""
    assert len(fleet.ledger) == 0 and fleet.summary().requests_answered == 0


async def test_a_reply_lost_to_a_mid_poll_drop_arrives_once_right_after_the_next_login(head_end: HeadEnd,
                                                                                     fleet: Fleet) -> None:
    dtu = fleet.dtu("SIM-DTU-0001")
    meter = water_meter(fleet)
    await fleet.start("127.0.0.1", head_end.port)
    first = await head_end.next()
    await first.login()
    dtu.drop_next_poll(offline_s=0.1)

    first.writer.write(cjt188_valve(meter.bus_address, ValveAction.CLOSE, profile=meter.profile))
    assert await first.reader.read() == b""  # the link went down instead of a reply
    assert len(fleet.ledger) == 0 and len(dtu.backlog) == 1
    assert meter.valve_state is ValveState.CLOSED  # the meter did obey on its bus

    second = await head_end.next()
    assert await second.login() == dtu.registration_id
    [replayed] = await second.frames(1)
    assert replayed.data_id == "A017" and replayed.status.valve is ValveState.CLOSED
    [delivery] = fleet.ledger
    assert delivery.backlogged and delivery.frame_hex.endswith(replayed.raw_hex)
    assert delivery.kind.value == "valve" and delivery.valve is ValveState.CLOSED
    assert len(dtu.backlog) == 0 and dtu.stats.drops == 1 and dtu.stats.backlog_sent == 1

    reading = await second.ask(cjt188_read(meter.bus_address))
    assert reading.status.valve is ValveState.CLOSED
    assert [d.backlogged for d in fleet.ledger] == [True, False]
    assert await second.silent() == b""  # nothing is sent twice


async def test_several_drops_keep_the_backlog_in_order_and_complete(head_end: HeadEnd, fleet: Fleet) -> None:
    dtu = fleet.dtu("SIM-DTU-0001")
    meters = fleet.valve_meters()
    await fleet.start("127.0.0.1", head_end.port)
    session = await head_end.next()
    await session.login()
    for meter in meters[:2]:
        dtu.drop_next_poll(offline_s=0.05)
        session.writer.write(cjt188_read(meter.bus_address))
        assert await session.reader.read() == b""
        session = await head_end.next()
        await session.login()
        if meter is meters[0]:
            await session.frames(1)  # the first backlog goes out before the next request drops

    [second] = await session.frames(1)
    assert second.address == meters[1].bus_address
    assert [d.meter_id for d in fleet.ledger] == [meters[0].meter_id, meters[1].meter_id]
    assert all(d.backlogged for d in fleet.ledger) and not dtu.backlog


async def test_the_dtu_reconnects_after_the_head_end_closes_the_link(head_end: HeadEnd, fleet: Fleet) -> None:
    await fleet.start("127.0.0.1", head_end.port)
    first = await head_end.next()
    await first.login()
    first.writer.close()

    second = await head_end.next()
    assert await second.login() == fleet.dtu("SIM-DTU-0001").registration_id
    assert fleet.dtu("SIM-DTU-0001").stats.logins == 2


async def test_heartbeats_go_up_only_when_idle(head_end: HeadEnd) -> None:
    spec = FleetSpec(meters=1, dtus=1, behaviour=replace(FAST, heartbeat_s=0.15, heartbeat=b"HB"))
    fleet = Fleet.build(spec)
    await fleet.start("127.0.0.1", head_end.port)
    try:
        session = await head_end.next()
        await session.login()
        assert await asyncio.wait_for(session.reader.read(4096), 2) == b"HB"
        assert fleet.dtu("SIM-DTU-0001").stats.heartbeats >= 1
    finally:
        await fleet.stop()


async def test_a_push_meter_sends_by_itself_and_holds_pushes_while_offline(head_end: HeadEnd) -> None:
    spec = FleetSpec(meters=1, dtus=1, push_rate=1.0, mix=((MeterKind.GAS, 1),),
                     behaviour=replace(FAST, push_interval_s=0.25))
    fleet = Fleet.build(spec)
    meter, dtu = fleet.valve_meters()[0], fleet.dtu("SIM-DTU-0001")
    await fleet.start("127.0.0.1", head_end.port)
    try:
        session = await head_end.next()
        await session.login()
        [pushed] = await session.frames(1, timeout=3)
        assert pushed.address == meter.bus_address and pushed.data_id == "901F"
        assert [d.pushed for d in fleet.ledger] == [True]
        assert ",push," in fleet.csv_meters()

        dtu.drop_next_poll(offline_s=0.8)  # long enough for pushes to fall into the offline spell
        session.writer.write(cjt188_read(meter.bus_address))
        assert await session.reader.read() == b""
        session = await head_end.next()
        await session.login()
        await eventually(lambda: not dtu.backlog)
        offline = [d for d in fleet.ledger if d.backlogged]  # the dropped reply, then every push made offline
        assert len(offline) >= 2 and [d.pushed for d in offline] == [False] + [True] * (len(offline) - 1)
        frames = await session.frames(len(offline))
        assert [f.raw_hex for f in frames] == [d.frame_hex.removeprefix("fefe") for d in offline]
    finally:
        await fleet.stop()


async def test_stop_ends_the_run(head_end: HeadEnd) -> None:
    dtu = Fleet.build(FleetSpec(meters=1, dtus=1, behaviour=FAST)).dtu("SIM-DTU-0001")
    assert isinstance(dtu, VirtualDtu)
    task = asyncio.create_task(dtu.run("127.0.0.1", head_end.port))
    session = await head_end.next()
    await session.login()
    await dtu.stop()

    await asyncio.wait_for(task, 2)
    assert await session.reader.read() == b"" and not dtu.online.is_set()


async def test_an_unreachable_gateway_is_retried(head_end: HeadEnd) -> None:
    dtu = Fleet.build(FleetSpec(meters=1, dtus=1, behaviour=FAST)).dtu("SIM-DTU-0001")
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    free = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    task = asyncio.create_task(dtu.run("127.0.0.1", free))
    await asyncio.sleep(0.3)

    assert not task.done() and dtu.stats.logins == 0
    await dtu.stop()
    await asyncio.wait_for(task, 2)
