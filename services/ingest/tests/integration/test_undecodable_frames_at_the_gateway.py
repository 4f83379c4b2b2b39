"""What a DTU sends that cannot be decoded is kept, not lost: each piece becomes a FrameRejected with its
raw bytes and the reason, and the link goes on reading what follows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from amiflow_runtime.localkafka import free_port
from amiflow_schemas import decode_event
from amiflow_schemas.events.registry import GatewayKind
from amiflow_schemas.primitives import ValveState
from ingest import registry_app
from ingest.adapters import db
from ingest.config import IngestSettings
from ingest.core.protocols import DiOrder
from ingest.core.protocols.bcd import wire_address
from ingest.core.protocols.cjt188_encode import cjt188_frame
from ingest.core.registry import GatewayDetails
from ingest.gateway.server import DtuGateway
from ingest.main import build_runtime
from ingest.simulator import replies
from sqlalchemy import select

pytestmark = pytest.mark.integration

ADDRESS = "00201510270588"  # no meter with this address is registered behind the DTU
FLOW = (replies.bcd(Decimal("1234.56"), 2, 4) + bytes([replies.M3]) + replies.bcd(Decimal("1200"), 2, 4)
        + bytes([replies.M3]) + bytes.fromhex("05302108211120") + replies.status_bytes(ValveState.OPEN, False))
GOOD = replies.cjt188_reply(0x10, ADDRESS, 0x81, 0x901F, DiOrder.HIGH_FIRST, 7, FLOW).lstrip(b"\xfe")
BAD_CHECKSUM = GOOD[:-2] + bytes([(GOOD[-2] + 1) & 0xFF]) + GOOD[-1:]
UNKNOWN_DI = cjt188_frame(0x10, wire_address(ADDRESS, 7), 0x81, b"\x12\x34\x07" + FLOW)
TRUNCATED_LAYOUT = cjt188_frame(0x10, wire_address(ADDRESS, 7), 0x81, b"\x90\x1f\x07" + FLOW[:7])
GARBAGE = b"\x01\x02\x03"


@pytest.fixture
async def gateway(database_url: str) -> AsyncIterator[tuple[DtuGateway, Any]]:
    settings = IngestSettings(database_url=database_url, gateway_port=free_port(), gateway_login_timeout_s=5)
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


async def rejections(runtime: Any) -> list[Any]:
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(db.outbox).order_by(db.outbox.c.id))).all()
    return [e.payload for e in (decode_event(r.message_value) for r in rows) if e.event_type == "FrameRejected"]


async def test_each_undecodable_piece_is_rejected_with_its_bytes_and_reason_and_the_link_reads_on(
    gateway: Any,
) -> None:
    server, runtime = gateway
    _, writer = await asyncio.open_connection("127.0.0.1", server.settings.gateway_port)
    writer.write(b"REG-0001\r\n")
    for piece in (GARBAGE, BAD_CHECKSUM, UNKNOWN_DI, TRUNCATED_LAYOUT, GOOD):
        await asyncio.sleep(0.2)  # separate reads, as a DTU forwards each meter answer on its own
        writer.write(piece)
        await writer.drain()

    for _ in range(150):  # up to 15 s for the five records
        if len(found := await rejections(runtime)) >= 5:
            break
        await asyncio.sleep(0.1)
    writer.close()

    assert [(bytes.fromhex(r.raw_hex), r.reason.value) for r in found] == [
        (GARBAGE, "unknown_protocol"),
        (BAD_CHECKSUM, "checksum_mismatch"),
        (UNKNOWN_DI, "unsupported_data_id"),
        (TRUNCATED_LAYOUT, "truncated"),
        (GOOD, "unknown_device"),  # decoded fine: the link read on past the bad ones
    ]
    assert all(r.source_id == "DTU-1" and r.detail for r in found)
    assert "wrong checksum" in found[1].detail and "12 34" in found[2].detail
