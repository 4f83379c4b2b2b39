"""Undoing console actions through the audit API on SQLite and PostgreSQL: a command not yet sent is cancelled,
one already sent is not, configuration goes back to what it was; each undo is audited and linked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import auth_headers
from amiflow_schemas.primitives import Utility
from commands.adapters import store
from commands.config import CommandsSettings
from commands.core.capabilities import Device
from commands.main import api

pytestmark = pytest.mark.integration

TENANT = "riverside"
NOW = datetime(2026, 7, 15, 10, tzinfo=ZoneInfo("Asia/Shanghai"))
POWER = Device(device_id="EM-1001", utility=Utility.ELECTRICITY, profile="dlt645-single-phase", active=True)


@dataclass
class Console:
    http: httpx.AsyncClient

    @staticmethod
    def who(subject: str, role: str = "operator") -> dict[str, str]:
        return auth_headers(TENANT, roles=(role,), subject=subject)

    async def last_action(self, action: str) -> dict[str, Any]:
        answer = await self.http.get("/v1/audit", params={"action": action}, headers=self.who("aud-1", "auditor"))
        entries: list[dict[str, Any]] = answer.json()["entries"]
        return entries[-1]

    async def undo(self, record_id: str, subject: str) -> httpx.Response:
        return await self.http.post(f"/v1/audit/{record_id}/undo", json={"reason": "wrong meter"},
                                    headers=self.who(subject))


@pytest.fixture
async def console(database_url: str) -> AsyncIterator[Console]:
    app = api(CommandsSettings(database_url=database_url))
    runtime = app.state.runtime
    runtime.clock = FrozenClock(NOW)
    await runtime.migrate()
    async with runtime.sessions() as session, session.begin():
        await store.remember_device(session, TENANT, 1, POWER, NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://commands") as http:
        yield Console(http)
    await runtime.engine.dispose()


def trip(**extra: Any) -> dict[str, Any]:
    return {"device_id": POWER.device_id, "kind": "relay_trip", "requested_by": "op-7", "note": "tampering", **extra}


async def test_a_command_not_yet_sent_is_cancelled_by_its_operators_undo(console: Console) -> None:
    later = (NOW + timedelta(hours=1)).isoformat()
    made = await console.http.post("/v1/commands", json=trip(not_before=later), headers=console.who("op-7"))
    assert made.status_code == 201
    action = await console.last_action("POST /v1/commands")
    assert action["outcome"]["ids"]["command_id"] == [made.json()["command_id"]]

    undone = await console.undo(action["id"], "op-7")
    assert undone.status_code == 200, undone.text
    assert undone.json()["path"] == f"/v1/commands/{made.json()['command_id']}/cancel"
    command = (await console.http.get(f"/v1/commands/{made.json()['command_id']}",
                                      headers=console.who("op-7"))).json()
    assert command["state"] == "cancelled"
    cancel = await console.last_action("POST /v1/commands/{command_id}/cancel")
    assert (cancel["undoes"], cancel["who"]["subject"], cancel["why"]) == (action["id"], "op-7", "wrong meter")
    assert cancel["what"]["body"]["json"] == {"cancelled_by": "op-7", "reason": "undo: wrong meter"}
    assert (await console.last_action("POST /v1/commands"))["undo"]["state"] == "done"


async def test_a_command_already_sent_is_not_called_back(console: Console) -> None:
    await console.http.post("/v1/commands", json=trip(), headers=console.who("op-7"))
    action = await console.last_action("POST /v1/commands")
    refused = await console.undo(action["id"], "op-7")
    assert refused.status_code == 409
    assert refused.json()["detail"]["answer"]["detail"]["problem"] == "not_cancellable"
    assert (await console.last_action("POST /v1/commands"))["undo"]["state"] == "failed"


async def test_another_operators_command_is_theirs_to_undo(console: Console) -> None:
    later = (NOW + timedelta(hours=1)).isoformat()
    await console.http.post("/v1/commands", json=trip(not_before=later), headers=console.who("op-8"))
    action = await console.last_action("POST /v1/commands")
    assert (await console.undo(action["id"], "op-7")).status_code == 403


async def test_a_new_exemption_is_undone_by_removing_it(console: Console) -> None:
    admin = console.who("boss", "tenant_admin")
    body = {"until": "2026-08-01", "reason": "medical need", "updated_by": "boss"}
    assert (await console.http.put("/v1/exemptions/ACC-1", json=body, headers=admin)).status_code == 200
    action = await console.last_action("PUT /v1/exemptions/{account_id}")
    assert action["before"]["status"] == 404
    undone = await console.http.post(f"/v1/audit/{action['id']}/undo", json={"reason": "wrong account"},
                                     headers=admin)
    assert (undone.status_code, undone.json()["method"]) == (200, "DELETE")
    assert (await console.http.get("/v1/exemptions/ACC-1", headers=admin)).status_code == 404


async def test_a_replaced_cut_off_policy_is_put_back(console: Console) -> None:
    admin = console.who("boss", "tenant_admin")
    before = (await console.http.get("/v1/cut-off-policy", headers=admin)).json()["policy"]
    changed = {**before, "cut_utilities": ["water"], "updated_by": "boss"}
    assert (await console.http.put("/v1/cut-off-policy", json=changed, headers=admin)).status_code == 200
    action = await console.last_action("PUT /v1/cut-off-policy")
    undone = await console.http.post(f"/v1/audit/{action['id']}/undo", json={"reason": "too early"}, headers=admin)
    assert undone.status_code == 200, undone.text
    after = (await console.http.get("/v1/cut-off-policy", headers=admin)).json()
    assert (after["policy"], after["default"], after["updated_by"]) == (before, False, "boss")
