"""A driver for the commands console on SQLite and PostgreSQL: the real app over ASGI, a frozen clock, devices
as the registry would have named them, and the events staged in the outbox for Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import asgi_client
from amiflow_schemas import decode_event
from amiflow_schemas.primitives import Utility
from commands.adapters import db, store
from commands.config import CommandsSettings
from commands.core.capabilities import Device
from commands.main import api
from sqlalchemy import select

ZONE = ZoneInfo("Asia/Shanghai")
TENANT = "riverside"
HEADERS = {"X-Tenant-Id": TENANT}
POWER = Device(device_id="EM-1001", utility=Utility.ELECTRICITY, profile="dlt645-single-phase", active=True)
POWER_2 = Device(device_id="EM-1002", utility=Utility.ELECTRICITY, profile="dlt645-single-phase", active=True)
WATER = Device(device_id="WM-2001", utility=Utility.WATER, profile="cjt188-water-2004", active=True)
REMOVED = Device(device_id="EM-9000", utility=Utility.ELECTRICITY, profile="dlt645-single-phase", active=False)


@dataclass
class Console:
    """The commands API of one tenant whose registry knows POWER, POWER_2, WATER and the removed REMOVED."""

    http: httpx.AsyncClient
    runtime: Any

    # For the test modules, which cannot import this conftest.
    TENANT = TENANT
    ZONE = ZONE
    POWER, POWER_2, WATER, REMOVED = POWER, POWER_2, WATER, REMOVED

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, headers=HEADERS, **kwargs)

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(path, headers=HEADERS, json=body)

    async def put(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.put(path, headers=HEADERS, json=body)

    async def delete(self, path: str) -> httpx.Response:
        return await self.http.delete(path, headers=HEADERS)

    def at(self, moment: datetime) -> None:
        """Set the clock the API reads."""
        self.runtime.clock = FrozenClock(moment)

    @property
    def now(self) -> datetime:
        now: datetime = self.runtime.clock.now()
        return now

    async def remember(self, *devices: Device) -> None:
        """Name devices as the registry's MeterDefined would."""
        async with self.runtime.sessions() as session, session.begin():
            for device in devices:
                await store.remember_device(session, TENANT, 1, device, self.now)

    async def staged(self, *event_types: str) -> list[Any]:
        """Envelopes staged in the outbox for Kafka, oldest first."""
        async with self.runtime.engine.connect() as conn:
            rows = (await conn.execute(select(db.outbox).where(db.outbox.c.topic != "amiflow.audit")
                                       .order_by(db.outbox.c.id))).all()
        events = [decode_event(r.message_value) for r in rows]
        return [e for e in events if not event_types or e.event_type in event_types]

    async def staged_for(self, command_id: str) -> list[str]:
        """The types of the staged events about one command, oldest first."""
        return [e.event_type for e in await self.staged()
                if str(getattr(e.payload, "command_id", "")) == command_id]


@pytest.fixture
async def console(database_url: str) -> AsyncIterator[Console]:
    """The commands API on an empty database with the default policy, at Wednesday 2026-07-15 10:00 local."""
    app = api(CommandsSettings(database_url=database_url))
    runtime = app.state.runtime
    runtime.clock = FrozenClock(datetime(2026, 7, 15, 10, tzinfo=ZONE))
    await runtime.migrate()
    async with asgi_client(app, "http://commands") as http:
        driver = Console(http, runtime)
        await driver.remember(POWER, POWER_2, WATER, REMOVED)
        yield driver
    await runtime.engine.dispose()
