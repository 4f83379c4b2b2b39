"""Undoing registry changes through the audit API on SQLite and PostgreSQL: changed details are put back as
they were, a registration is taken out of service again, a removal is refused with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import auth_headers
from ingest.config import IngestSettings
from ingest.main import api

pytestmark = pytest.mark.integration

TENANT = "t1"
OPERATOR = auth_headers(TENANT, roles=("operator",), subject="op-7")
AUDITOR = auth_headers(TENANT, roles=("auditor",), subject="aud-1")
METER = {"meter_id": "WM-1", "utility": "water", "profile": "cjt188-water-2004", "bus_address": "00000012345678",
         "unit": "m3", "multiplier": "0.001", "dial_count": 8, "gateway_id": "COL-1", "channel": "1",
         "schedule": "daily 01:00 jitter 30m", "location": {"latitude": "30.572815", "longitude": "104.066801"},
         "groups": {"district_metered_area": "DMA-07"}, "di_order": "1F90", "room": "1201"}


@pytest.fixture
async def registry(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = api(IngestSettings(database_url=database_url))
    runtime = app.state.runtime
    runtime.clock = FrozenClock(datetime(2026, 11, 21, tzinfo=UTC))
    await runtime.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://ingest") as http:
        for body in ({"gateway_id": "DTU-1", "kind": "dtu", "registration_id": "861234567890123"},
                     {"gateway_id": "COL-1", "kind": "collector", "parent_gateway_id": "DTU-1", "channel": "RS485-1"}):
            assert (await http.post("/v1/gateways", json=body, headers=OPERATOR)).status_code == 201
        yield http
    await runtime.engine.dispose()


async def last_action(http: httpx.AsyncClient, action: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = (await http.get("/v1/audit", params={"action": action},
                                                    headers=AUDITOR)).json()["entries"]
    return entries[-1]


async def undo(http: httpx.AsyncClient, action: dict[str, Any]) -> httpx.Response:
    return await http.post(f"/v1/audit/{action['id']}/undo", json={"reason": "wrong meter"}, headers=OPERATOR)


async def test_changed_meter_details_are_put_back(registry: httpx.AsyncClient) -> None:
    assert (await registry.post("/v1/meters", json=METER, headers=OPERATOR)).status_code == 201
    before = (await registry.get("/v1/meters/WM-1", headers=OPERATOR)).json()
    changed = {k: v for k, v in METER.items() if k != "meter_id"} | {"room": "1202", "multiplier": "0.01"}
    assert (await registry.put("/v1/meters/WM-1", json=changed, headers=OPERATOR)).status_code == 200

    answer = await undo(registry, await last_action(registry, "PUT /v1/meters/{meter_id}"))
    assert answer.status_code == 200, answer.text
    after = (await registry.get("/v1/meters/WM-1", headers=OPERATOR)).json()
    assert {k: v for k, v in after.items() if k != "revision"} == {k: v for k, v in before.items() if k != "revision"}
    assert after["revision"] == before["revision"] + 2  # put back by a change of its own, not by rewriting


async def test_a_registered_meter_is_taken_out_of_service_and_a_removal_is_final(
        registry: httpx.AsyncClient) -> None:
    assert (await registry.post("/v1/meters", json=METER, headers=OPERATOR)).status_code == 201
    answer = await undo(registry, await last_action(registry, "POST /v1/meters"))
    assert (answer.status_code, answer.json()["method"]) == (200, "DELETE")
    assert (await registry.get("/v1/meters/WM-1", headers=OPERATOR)).json()["status"] == "removed"

    compensation = await undo(registry, await last_action(registry, "DELETE /v1/meters/{meter_id}"))
    assert compensation.json()["detail"]["problem"] == "is_a_compensation"  # not undone in turn

    assert (await registry.post("/v1/meters", json={**METER, "meter_id": "WM-2", "bus_address": "00000012345679"},
                                headers=OPERATOR)).status_code == 201
    assert (await registry.delete("/v1/meters/WM-2", headers=OPERATOR)).status_code == 200
    refused = await undo(registry, await last_action(registry, "DELETE /v1/meters/{meter_id}"))
    assert refused.status_code == 409 and refused.json()["detail"]["problem"] == "cannot_undo"
    assert "register it again" in refused.json()["detail"]["reason"]


async def test_a_retired_gateway_is_put_back_in_service(registry: httpx.AsyncClient) -> None:
    await registry.post("/v1/gateways", json={"gateway_id": "DTU-2", "kind": "dtu", "registration_id": "8612"},
                        headers=OPERATOR)
    assert (await registry.delete("/v1/gateways/DTU-2", headers=OPERATOR)).status_code == 200
    assert (await undo(registry, await last_action(registry, "DELETE /v1/gateways/{gateway_id}"))).status_code == 200
    assert (await registry.get("/v1/gateways/DTU-2", headers=OPERATOR)).json()["maintenance"] == "in_service"
