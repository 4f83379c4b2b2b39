"""An operator limited to sites and duties commands only the devices within them, and signs with their name."""

from __future__ import annotations

from typing import Any

import pytest
from amiflow_runtime.testing import token_for
from amiflow_schemas.primitives import Utility
from commands.core.capabilities import Device

pytestmark = pytest.mark.integration

EAST_POWER = Device(device_id="EM-E-1", utility=Utility.ELECTRICITY, profile="dlt645-single-phase", active=True,
                    site="East Block")
EAST_WATER = Device(device_id="WM-E-1", utility=Utility.WATER, profile="cjt188-water-2004", active=True,
                    site="East Block")
WEST_POWER = Device(device_id="EM-W-1", utility=Utility.ELECTRICITY, profile="dlt645-single-phase", active=True,
                    site="West Block")


def operator(console: Any, subject: str = "op-east") -> dict[str, str]:
    token = token_for(console.TENANT, ("operator",), subject=subject, sites=["East Block"], duties=["electricity"])
    return {"Authorization": f"Bearer {token}", "X-Tenant-Id": console.TENANT}  # its own tenant, named


def trip(device_id: str, who: str = "op-east", key: str | None = None) -> dict[str, Any]:
    return {"device_id": device_id, "kind": "relay_trip", "requested_by": who, "note": "meter tampering",
            "idempotency_key": key}


async def test_an_operator_commands_only_devices_of_their_sites_and_duty(console: Any) -> None:
    await console.remember(EAST_POWER, EAST_WATER, WEST_POWER)
    headers = operator(console)
    accepted = await console.http.post("/v1/commands", headers=headers, json=trip("EM-E-1"))
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["requested_by"] == "op-east"

    other_site = await console.http.post("/v1/commands", headers=headers, json=trip("EM-W-1"))
    assert other_site.status_code == 403 and other_site.json()["detail"]["problem"] == "out_of_reach"
    other_duty = await console.http.post("/v1/commands", headers=headers,
                                         json={**trip("WM-E-1"), "kind": "valve_close"})
    assert other_duty.status_code == 403
    unknown = await console.http.post("/v1/commands", headers=headers, json=trip("EM-NOWHERE"))
    assert unknown.status_code == 403  # a limited operator learns nothing of devices beyond their reach
    assert await console.staged_for(accepted.json()["command_id"])  # the one in reach was staged
    assert len(await console.staged("RelayCommandIssued", "ValveCommandIssued", "CommandRequested")) >= 1
    requested = [e for e in await console.staged("CommandRequested")]
    assert {e.payload.device_id for e in requested} == {"EM-E-1"}


async def test_an_operator_signs_with_their_own_name(console: Any) -> None:
    await console.remember(EAST_POWER)
    forged = await console.http.post("/v1/commands", headers=operator(console), json=trip("EM-E-1", who="op-west"))
    assert forged.status_code == 422 and forged.json()["detail"]["problem"] == "not_your_name"


async def test_a_batch_refuses_the_lines_beyond_reach_and_takes_the_rest(console: Any) -> None:
    await console.remember(EAST_POWER, WEST_POWER)
    answer = await console.http.post("/v1/commands/batch", headers=operator(console), json={
        "batch_id": "B-REACH", "kind": "relay_trip", "requested_by": "op-east", "note": "arrears sweep",
        "device_ids": ["EM-E-1", "EM-W-1"]})
    assert answer.status_code == 200, answer.text
    lines = {line["device_id"]: line for line in answer.json()["lines"]}
    assert lines["EM-E-1"]["status"] == "accepted"
    assert (lines["EM-W-1"]["status"], lines["EM-W-1"]["problem"]) == ("refused", "out_of_reach")


async def test_an_operator_cannot_cancel_a_command_beyond_reach(console: Any) -> None:
    await console.remember(WEST_POWER)
    made = await console.post("/v1/commands", {**trip("EM-W-1", who="admin"), "not_before": None})
    assert made.status_code == 201, made.text
    refused = await console.http.post(f"/v1/commands/{made.json()['command_id']}/cancel", headers=operator(console),
                                      json={"cancelled_by": "op-east", "reason": "not mine"})
    assert refused.status_code == 403
