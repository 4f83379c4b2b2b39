"""The DTU gateway's login rules on a real socket and database: unknown DTUs are refused with a
FrameRejected, the same id on a new socket wins, connection state is recorded for the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from amiflow_runtime.localkafka import free_port
from amiflow_schemas import decode_event
from amiflow_schemas.events.registry import GatewayKind
from ingest import registry_app
from ingest.adapters import db, gateway_db
from ingest.config import IngestSettings
from ingest.core.registry import GatewayDetails
from ingest.gateway.server import DtuGateway
from ingest.main import build_runtime
from sqlalchemy import select

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway(database_url: str) -> AsyncIterator[tuple[DtuGateway, Any]]:
    settings = IngestSettings(database_url=database_url, gateway_port=free_port(), gateway_login_timeout_s=2,
                              gateway_max_connections_per_address=3, gateway_poll_on_login=True)
    runtime = build_runtime(settings, "test")
    await runtime.migrate()
    await registry_app.register_gateway(runtime, "market", "DTU-1", GatewayDetails(GatewayKind.DTU, "REG-0001"))
    server = DtuGateway(runtime, settings, instance="test")
    task = asyncio.create_task(server.run())
    await asyncio.wait_for(server.listening.wait(), 10)
    yield server, runtime
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await runtime.engine.dispose()


async def connect(server: DtuGateway, login: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.settings.gateway_port)
    writer.write(login)
    await writer.drain()
    return reader, writer


async def rejections(runtime: Any) -> list[Any]:
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(db.outbox).order_by(db.outbox.c.id))).all()
    return [e for e in (decode_event(r.message_value) for r in rows) if e.event_type == "FrameRejected"]


async def eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)
    return result


async def test_an_unknown_dtu_is_refused_and_its_login_published_as_rejected(gateway: Any) -> None:
    server, runtime = gateway
    reader, writer = await connect(server, b"NOT-REGISTERED\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the gateway
    [rejected] = await eventually(lambda: rejections(runtime))
    assert rejected.payload.reason.value == "unknown_device"
    assert "NOT-REGISTERED" in rejected.payload.detail
    assert bytes.fromhex(rejected.payload.raw_hex) == b"NOT-REGISTERED"
    writer.close()


async def test_silence_instead_of_a_login_is_refused_after_the_timeout(gateway: Any) -> None:
    server, runtime = gateway
    reader, writer = await connect(server, b"")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    [rejected] = await eventually(lambda: rejections(runtime))
    assert "no registration packet" in rejected.payload.detail
    writer.close()


async def test_the_same_dtu_on_a_new_socket_wins_and_the_old_socket_is_closed(gateway: Any) -> None:
    server, runtime = gateway
    old_reader, old_writer = await connect(server, b"REG-0001\r\n")
    await eventually(lambda: _online(runtime))
    first = server.links[("market", "DTU-1")]
    _new_reader, new_writer = await connect(server, b"REG-0001\r\n")
    await eventually(lambda: _async(server.links[("market", "DTU-1")] is not first))
    assert await asyncio.wait_for(old_reader.read(), 5) == b""
    await asyncio.sleep(0.2)  # the old link's cleanup must not remove the new mapping
    assert ("market", "DTU-1") in server.links
    state = await _online(runtime)
    assert state["online"] and state["instance"] == "test"
    old_writer.close()
    new_writer.close()
    await eventually(lambda: _offline(runtime))


async def test_connections_beyond_the_per_address_limit_are_refused(gateway: Any) -> None:
    server, _ = gateway
    held = [await connect(server, b"") for _ in range(3)]
    reader, writer = await connect(server, b"")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    for _, w in [*held, (reader, writer)]:
        w.close()


async def _online(runtime: Any) -> dict[str, Any] | None:
    async with runtime.sessions() as session:
        state = await gateway_db.connection(session, "market", "DTU-1")
    return state if state and state["online"] else None


async def _offline(runtime: Any) -> bool:
    async with runtime.sessions() as session:
        state = await gateway_db.connection(session, "market", "DTU-1")
    return bool(state) and not state["online"]


async def _async(value: bool) -> bool:
    return value


async def test_a_modbus_meter_behind_a_dtu_is_polled_and_its_energy_published(gateway: Any) -> None:
    import struct
    from decimal import Decimal

    from amiflow_schemas.primitives import Unit, Utility
    from ingest.core.protocols.modbus import crc16
    from ingest.core.registry import MeterDetails

    server, runtime = gateway
    await registry_app.register_meter(runtime, "market", "EM-MB-7", MeterDetails(
        Utility.ELECTRICITY, "modbus-eastron-sdm120", "7", Unit.KWH, gateway_id="DTU-1"))
    reader, writer = await connect(server, b"REG-0001\r\n")
    meter_registers = {0x00: 230.0, 0x48: 12345.5, 0x4A: 1.25}  # voltage, import and export energy

    async def answer_polls() -> None:  # the meter on the DTU's RS-485 bus, one request at a time
        while True:
            request = await reader.readexactly(8)  # RTU: unit, 04, first register, count, CRC
            unit, function, first, count = request[0], request[1], *struct.unpack(">HH", request[2:6])
            assert (unit, function) == (7, 4) and request[6:] == crc16(request[:6])
            words = bytearray(2 * count)
            for address, value in meter_registers.items():
                if first <= address < first + count:
                    words[2 * (address - first):2 * (address - first) + 4] = struct.pack(">f", value)
            reply = bytes([7, 4, len(words)]) + bytes(words)
            writer.write(reply + crc16(reply))
            await writer.drain()

    meter = asyncio.create_task(answer_polls())

    async def published() -> list[Any]:
        async with runtime.engine.connect() as conn:
            rows = (await conn.execute(select(db.outbox))).all()
        return [e for e in (decode_event(r.message_value) for r in rows) if e.event_type == "ReadingReceived"]

    [reading] = await eventually(published)
    values = {r.register: r.value for r in reading.payload.registers}
    assert values == {"total": Decimal("12345.5"), "reverse": Decimal("1.25")}
    assert reading.payload.meter_id == "EM-MB-7" and reading.payload.gateway_id == "DTU-1"
    meter.cancel()
    writer.close()


async def test_a_376_concentrator_login_and_heartbeat_are_confirmed_and_other_frames_reported(gateway: Any) -> None:
    from ingest.core.gw376 import master_confirm, parse_gw376

    server, runtime = gateway
    await registry_app.register_gateway(runtime, "market", "CON-1",
                                        GatewayDetails(GatewayKind.CONCENTRATOR, "0200-04660"))
    login = bytes.fromhex("683200320068C900023412000271000001008516")
    heartbeat = bytes.fromhex("683200320068C900023412000271000004008816")
    reader, writer = await connect(server, login)
    expected = master_confirm(parse_gw376(login)[0])
    assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
    writer.write(heartbeat)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
    user = bytes.fromhex("C900023412000C61" "00000100")  # AFN 0C (class-1 data): not read yet
    length = ((len(user) << 2) | 2).to_bytes(2, "little")
    class_one = b"\x68" + length + length + b"\x68" + user + bytes([sum(user) % 256, 0x16])
    writer.write(class_one)
    await writer.drain()
    [rejected] = await eventually(lambda: rejections(runtime))
    assert rejected.payload.reason.value == "unsupported_data_id" and "AFN 0C" in rejected.payload.detail
    assert ("market", "CON-1") in server.links
    writer.close()
