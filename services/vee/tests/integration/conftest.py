"""A VEE API on a fresh database (both backends) with a frozen clock, and the registry and reading
handlers the worker would run, so tests can put meters and readings behind the HTTP app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.service import ServiceRuntime
from amiflow_runtime.testing import asgi_client
from amiflow_schemas import new_envelope
from amiflow_schemas.events.readings import ReadingReceived
from amiflow_schemas.events.registry import MeterDefined, ReadSchedule, ScheduleKind
from amiflow_schemas.examples import example_payloads
from vee.config import VeeSettings
from vee.main import api
from vee.registry_app import registry_handler
from vee.series_app import series_handler

ZONE = "Asia/Shanghai"
TENANT = "t"
DAILY = ReadSchedule(kind=ScheduleKind.DAILY, at_local="00:00", jitter_s=0)
HOURLY = ReadSchedule(kind=ScheduleKind.HOURLY, at_local=None, jitter_s=0)


def zones(_tenant: str) -> str:
    return ZONE


@dataclass
class ApiWithWorker:
    """The API app (as a platform admin of TENANT) and the handlers that fill its read models."""

    http: httpx.AsyncClient
    runtime: ServiceRuntime
    clock: FrozenClock
    tenant: str = TENANT

    async def define_meter(self, meter_id: str, *, hourly: bool = False) -> None:
        """A water meter of the example's building (B3), read daily at local midnight or hourly."""
        defined: MeterDefined = example_payloads()["MeterDefined"]
        meter = defined.meter.model_copy(update={"meter_id": meter_id, "schedule": HOURLY if hourly else DAILY,
                                                 "dial_count": 6,
                                                 "replaces_meter_id": None, "installed_at": None,
                                                 "installation_reading": None})
        event = defined.model_copy(update={"meter": meter, "device_key": f"{TENANT}/meter/{meter_id}"})
        async with self.runtime.sessions() as session, session.begin():
            await registry_handler(self.clock, zones)(session, _envelope(event, meter_id, self.clock.now()))

    async def read(self, meter_id: str, at: datetime, value: str) -> None:
        """A reading as ingest publishes it, validated as the worker would (one transaction)."""
        received = ReadingReceived.model_validate({
            "meter_id": meter_id, "utility": "water", "measured_at": at, "source": "dtu", "gateway_id": "DTU-1",
            "registers": [{"register": "total", "value": value, "unit": "m3"}]})
        async with self.runtime.sessions() as session, session.begin():
            await series_handler(self.clock, zones)(session, _envelope(received, meter_id, at))


def _envelope(payload: Any, key: str, at: datetime) -> Any:
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=TENANT, key=key, occurred_at=at, recorded_at=at,
                        producer="test")


@pytest.fixture
async def vee_api(database_url: str, request: pytest.FixtureRequest) -> AsyncIterator[ApiWithWorker]:
    """Needs `now` (an aware datetime) from the test module: the frozen clock's time."""
    app = api(VeeSettings(database_url=database_url, time_zone=ZONE))
    runtime: ServiceRuntime = app.state.runtime
    clock = FrozenClock(request.module.NOW)
    runtime.clock = clock
    await runtime.migrate()
    try:
        async with asgi_client(app, "http://vee", tenant=TENANT) as http:
            yield ApiWithWorker(http, runtime, clock)
    finally:
        await runtime.engine.dispose()
