"""Connection rows written for many links at once: a whole fleet's disconnects are recorded, and a write
about one login of a DTU never changes the row of its newer login."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from amiflow_runtime.localkafka import free_port
from amiflow_schemas.events.registry import GatewayKind
from ingest import registry_app
from ingest.adapters import gateway_db
from ingest.adapters.gateway_db import LinkRecord
from ingest.config import IngestSettings
from ingest.core.registry import GatewayDetails
from ingest.gateway.server import DtuGateway
from ingest.main import build_runtime

pytestmark = pytest.mark.integration

FLEET = 40
LOGIN = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def runtime(database_url: str) -> AsyncIterator[Any]:
    settings = IngestSettings(database_url=database_url, gateway_port=free_port(), gateway_login_timeout_s=5,
                              gateway_max_connections_per_address=FLEET + 1)
    built = build_runtime(settings, "test")
    await built.migrate()
    yield built
    await built.engine.dispose()


async def _login(runtime: Any, at: datetime) -> None:
    async with runtime.sessions() as session, session.begin():
        await gateway_db.mark_online(session, tenant_id="market", gateway_id="DTU-1", remote="10.0.0.1:5000",
                                     instance="test", at=at)


async def _row(runtime: Any, gateway_id: str = "DTU-1") -> dict[str, Any]:
    async with runtime.sessions() as session:
        row = await gateway_db.connection(session, "market", gateway_id)
    assert row is not None
    return row


async def _write(runtime: Any, mark: Any, record: LinkRecord) -> None:
    async with runtime.sessions() as session, session.begin():
        await mark(session, [record], "test")


async def test_a_late_disconnect_of_an_earlier_login_leaves_the_newer_login_online(runtime: Any) -> None:
    await _login(runtime, LOGIN)
    await _login(runtime, LOGIN + timedelta(seconds=5))  # the DTU came back before the old link's close was written

    await _write(runtime, gateway_db.mark_many_offline, LinkRecord("market", "DTU-1", LOGIN, 7, LOGIN))
    assert (await _row(runtime))["online"]

    newer = LOGIN + timedelta(seconds=5)
    await _write(runtime, gateway_db.mark_many_offline, LinkRecord("market", "DTU-1", newer, 3, newer))
    row = await _row(runtime)
    assert not row["online"] and row["disconnected_at"] == newer and row["frames_in"] == 3


async def test_a_refresh_counts_frames_of_a_held_link_and_never_brings_a_closed_one_back_online(runtime: Any) -> None:
    await _login(runtime, LOGIN)
    await _write(runtime, gateway_db.mark_many_seen, LinkRecord("market", "DTU-1", LOGIN, 12, LOGIN + timedelta(1)))
    row = await _row(runtime)
    assert row["online"] and row["frames_in"] == 12 and row["last_seen_at"] == LOGIN + timedelta(1)

    closed = LOGIN + timedelta(2)
    await _write(runtime, gateway_db.mark_many_offline, LinkRecord("market", "DTU-1", LOGIN, 13, closed))
    await _write(runtime, gateway_db.mark_many_seen, LinkRecord("market", "DTU-1", LOGIN, 14, closed + timedelta(1)))
    row = await _row(runtime)
    assert not row["online"] and row["frames_in"] == 13 and row["last_seen_at"] == closed


async def test_a_whole_fleet_closing_at_once_is_recorded_offline(runtime: Any) -> None:
    for number in range(FLEET):
        await registry_app.register_gateway(runtime, "market", f"DTU-{number}",
                                            GatewayDetails(GatewayKind.DTU, f"REG-{number:04d}"))
    server = DtuGateway(runtime, runtime.settings, instance="test")
    serving = asyncio.create_task(server.run())
    await asyncio.wait_for(server.listening.wait(), 10)
    try:
        sockets = [await asyncio.open_connection("127.0.0.1", server.settings.gateway_port) for _ in range(FLEET)]
        for number, (_reader, writer) in enumerate(sockets):
            writer.write(f"REG-{number:04d}\r\n".encode())
        await _until(lambda rows: all(r["online"] for r in rows), runtime)
        for _reader, writer in sockets:
            writer.close()
        rows = await _until(lambda rows: not any(r["online"] for r in rows), runtime)
        assert all(r["disconnected_at"] is not None for r in rows)
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


async def _until(check: Any, runtime: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with runtime.sessions() as session:
            rows = [await gateway_db.connection(session, "market", f"DTU-{n}") for n in range(FLEET)]
        known = [r for r in rows if r is not None]
        if len(known) == FLEET and check(known):
            return known
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in time: {sum(r['online'] for r in known)} of {len(known)} online")
        await asyncio.sleep(0.1)
