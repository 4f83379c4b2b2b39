"""Undoing a reading edit through the audit API on SQLite and PostgreSQL: another edit puts back the value the
slot had, and the edit log keeps both; a district change goes back as it was."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import auth_headers
from amiflow_schemas import new_envelope
from amiflow_schemas.events.readings import ReadingReceived
from amiflow_schemas.events.registry import MeterDefined, ReadSchedule, ScheduleKind
from amiflow_schemas.examples import example_payloads
from vee.config import VeeSettings
from vee.main import api
from vee.registry_app import registry_handler
from vee.series_app import series_handler

pytestmark = pytest.mark.integration

TENANT, METER = "t", "WM-EDIT"
START = datetime(2026, 11, 1, 16, tzinfo=UTC)  # 00:00 local, the daily read time
OPERATOR = auth_headers(TENANT, roles=("operator",), subject="op-7")
AUDITOR = auth_headers(TENANT, roles=("auditor",), subject="aud-1")


def zones(_tenant: str) -> str:
    return "Asia/Shanghai"


def _envelope(payload: Any, at: datetime) -> Any:
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=TENANT, key=METER, occurred_at=at, recorded_at=at,
                        producer="test")


@dataclass
class Vee:
    http: httpx.AsyncClient
    clock: FrozenClock

    async def value_at(self, day: int) -> tuple[str, str]:
        at = START + timedelta(days=day)
        points = (await self.http.get(f"/v1/meters/{METER}/readings", headers=OPERATOR, params={
            "from": at.isoformat(), "to": (at + timedelta(seconds=1)).isoformat()})).json()
        return points[0]["registers"][0]["value"], points[0]["status"]

    async def last_action(self, action: str) -> dict[str, Any]:
        entries: list[dict[str, Any]] = (await self.http.get("/v1/audit", params={"action": action},
                                                             headers=AUDITOR)).json()["entries"]
        return entries[-1]


@pytest.fixture
async def vee(database_url: str) -> AsyncIterator[Vee]:
    app = api(VeeSettings(database_url=database_url))
    runtime = app.state.runtime
    runtime.clock = FrozenClock(START + timedelta(days=10))
    await runtime.migrate()
    defined: MeterDefined = example_payloads()["MeterDefined"]
    meter = defined.meter.model_copy(update={
        "meter_id": METER, "schedule": ReadSchedule(kind=ScheduleKind.DAILY, at_local="00:00", jitter_s=0),
        "replaces_meter_id": None, "installed_at": None, "installation_reading": None, "dial_count": 6})
    async with runtime.sessions() as session, session.begin():
        await registry_handler(runtime.clock, zones)(session, _envelope(
            defined.model_copy(update={"meter": meter, "device_key": f"{TENANT}/meter/{METER}"}), START))
    handle = series_handler(runtime.clock, zones)
    for day, value in ((0, "100"), (1, "110"), (2, "120")):
        received = ReadingReceived.model_validate({
            "meter_id": METER, "utility": "water", "measured_at": START + timedelta(days=day), "source": "dtu",
            "gateway_id": "DTU-1", "registers": [{"register": "total", "value": value, "unit": "m3"}]})
        async with runtime.sessions() as session, session.begin():
            await handle(session, _envelope(received, received.measured_at))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vee") as http:
        yield Vee(http, runtime.clock)
    await runtime.engine.dispose()


async def test_an_edit_is_undone_by_an_edit_back_to_the_value_before(vee: Vee) -> None:
    slot = quote((START + timedelta(days=1)).isoformat(), safe="")
    edited = await vee.http.post(f"/v1/meters/{METER}/readings/{slot}/edits", headers=OPERATOR,
                                 json={"value": "111", "edited_by": "op-7", "reason_code": "misread"})
    assert edited.status_code == 201, edited.text
    assert (await vee.value_at(1))[0].startswith("111")
    action = await vee.last_action("POST /v1/meters/{meter_id}/readings/{measured_at}/edits")
    assert action["before"]["status"] == 200

    vee.clock.advance(timedelta(minutes=5))  # the later edit of a slot is the one shown
    undone = await vee.http.post(f"/v1/audit/{action['id']}/undo", json={"reason": "read it wrong"},
                                 headers=OPERATOR)
    assert undone.status_code == 200, undone.text
    value, status = await vee.value_at(1)
    assert value.startswith("110") and status == "edited"
    log = (await vee.http.get(f"/v1/meters/{METER}/edits", headers=OPERATOR)).json()
    assert [(e["value"][:3], e["reason_code"], e["comment"]) for e in log] == [
        ("111", "misread", None), ("110", "undo", "read it wrong")]


async def test_someone_elses_edit_is_not_theirs_to_undo(vee: Vee) -> None:
    slot = quote((START + timedelta(days=1)).isoformat(), safe="")
    await vee.http.post(f"/v1/meters/{METER}/readings/{slot}/edits", headers=OPERATOR,
                        json={"value": "111", "edited_by": "op-7", "reason_code": "misread"})
    action = await vee.last_action("POST /v1/meters/{meter_id}/readings/{measured_at}/edits")
    other = auth_headers(TENANT, roles=("operator",), subject="op-8")
    assert (await vee.http.post(f"/v1/audit/{action['id']}/undo", json={"reason": "x"},
                                headers=other)).status_code == 403
