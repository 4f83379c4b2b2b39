"""Issue 11 in a real browser: an operator logs in to the console, finds a meter, sees its curve, closes its valve
and sees the command confirmed — by a simulated meter behind a simulated DTU that really obeyed it.

Everything the test makes is in the demo tenant under ids of this run (a random prefix), so the session's
platform, shared with the other e2e tests, is not disturbed. The fleet (one CJ/T 188 water meter with a valve
behind one DTU) is registered through ingest's API and logs in to the platform's DTU gateway; it is registered
"push", so the gateway never polls it and every frame on its bus answers the valve command or its read-back.
Its readings of the last hours are posted to ingest as the meter itself would report them, so the curve has
points. The scenario is tests/browser/console.mjs; the screenshots stay in test-artifacts/browser/.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from amiflow_schemas.primitives import ValveState
from commands.adapters import store
from commands.config import CommandsSettings
from commands.main import build_runtime
from ingest.simulator import Fleet, FleetSpec, MeterKind, ReplyKind
from ingest.simulator.models import FlowMeter

from .harness import TENANT, Browser, Platform, admin, eventually, new_user

pytestmark = pytest.mark.e2e

HOURS_OF_READINGS = 6
SCENARIO_TIMEOUT_S = 240.0
CONFIRM_TIMEOUT_MS = 60_000
NOTE = "browser test: valve closed from the console"


@pytest.fixture
async def water_meter(platform: Platform) -> AsyncIterator[tuple[Fleet, FlowMeter]]:
    """A water meter with a valve behind a DTU logged in to the gateway, known to ingest, VEE and commands, with
    readings of the last hours validated."""
    prefix = f"BRW{uuid.uuid4().hex[:8].upper()}"
    fleet = Fleet.build(FleetSpec(meters=1, dtus=1, seed=11, prefix=prefix, tenant=TENANT,
                                  mix=((MeterKind.WATER, 1),), schedule="push", drift_rate=0.0, leak_rate=0.0,
                                  low_battery_rate=0.0))
    [meter] = fleet.valve_meters()
    assert meter.has_valve
    try:
        async with admin(platform.api["ingest"]) as ingest:
            await fleet.register(platform.api["ingest"], deadline_s=60, client=ingest)
            await fleet.start("127.0.0.1", int(platform.env["INGEST_GATEWAY_PORT"]))
            await fleet.wait_online(30)
            await _post_recent_readings(ingest, meter)
        await _until_vee_has_the_curve(platform, meter.meter_id)
        await _until_commands_knows(platform, meter.meter_id)
        yield fleet, meter
    finally:
        await fleet.stop()


async def _post_recent_readings(ingest: Any, meter: FlowMeter) -> None:
    """The meter's register at each of the last full hours, as the meter itself counted it."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    readings = [{"meter_id": meter.meter_id, "utility": "water", "measured_at": at.isoformat(),
                 "registers": [{"register": "total", "value": str(meter.reading(at).total), "unit": "m3"}]}
                for at in (now - timedelta(hours=h) for h in range(HOURS_OF_READINGS, 0, -1))]
    answer = await ingest.post("/v1/readings", json={"readings": readings})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == HOURS_OF_READINGS, answer.text


async def _until_vee_has_the_curve(platform: Platform, meter_id: str) -> None:
    """What the meter page draws by default: hourly consumption of the last 7 days."""
    now = datetime.now(UTC)
    query = {"granularity": "hour", "from": (now - timedelta(days=7)).isoformat(), "to": now.isoformat()}
    async with admin(platform.api["vee"]) as vee:
        async def buckets() -> list[Any] | None:
            answer = await vee.get(f"/v1/meters/{meter_id}/consumption", params=query)
            return answer.json() if answer.status_code == 200 and answer.json() else None

        await eventually(f"VEE's hourly consumption of {meter_id}", buckets)


async def _until_commands_knows(platform: Platform, meter_id: str) -> None:
    """Commands learns devices from the registry's events; it has no API listing them, so ask its database."""
    runtime = build_runtime(CommandsSettings(database_url=platform.env["COMMANDS_DATABASE_URL"]), "e2e")
    try:
        async def known() -> bool:
            async with runtime.sessions() as session:
                return meter_id in await store.devices_of(session, TENANT, [meter_id])

        await eventually(f"the commands service knowing {meter_id}", known, timeout_s=60)
    finally:
        await runtime.engine.dispose()


async def test_an_operator_finds_a_meter_sees_its_curve_closes_its_valve_and_sees_it_confirmed(
        platform: Platform, browser: Browser, water_meter: tuple[Fleet, FlowMeter]) -> None:
    fleet, meter = water_meter
    username = f"br-operator-{uuid.uuid4().hex[:8]}"
    # An operator limited to water: the meter (no building) is within their duties.
    password = await new_user(platform.api["identity"], username, ["operator"], duties=["water"])

    run = await browser.run("console", SCENARIO_TIMEOUT_S, username=username, password=password,
                            meter_id=meter.meter_id, note=NOTE, confirm_timeout_ms=CONFIRM_TIMEOUT_MS)
    assert run.passed, run.explain()
    result = run.result
    print(f"console scenario: {run.seconds:.1f} s; steps {[(s['name'], s['ms']) for s in result['steps']]}; "
          f"states {result['states_seen']}; console errors {len(result['console_errors'])}")

    language = result["language"]
    assert language["english"] != language["before"] and language["after"] == language["before"], language
    assert language["lang_attribute"] == "en", language
    assert result["points"] > 0
    assert result["final_state"] == "confirmed", result["states_seen"]

    # The page's click made exactly one command, and the commands service says it was confirmed by read-back.
    async with admin(platform.api["commands"]) as commands:
        answer = await commands.get("/v1/commands", params={"device_id": meter.meter_id})
        assert answer.status_code == 200, answer.text
        made = answer.json()
        assert [(c["kind"], c["state"]) for c in made] == [("valve_close", "confirmed")], made
        [command] = made
        assert (command["requested_by"], command["note"]) == (username, NOTE), command
        history = (await commands.get(f"/v1/commands/{command['command_id']}")).json()["history"]
    assert [c["command_id"] for c in result["commands"]] == [command["command_id"]], result["commands"]
    assert "CommandConfirmed" in [h["event_type"] for h in history], history

    # And the simulated meter obeyed once: its valve is closed.
    assert meter.valve_state is ValveState.CLOSED
    assert len([d for d in fleet.ledger.for_meter(meter.meter_id) if d.kind is ReplyKind.VALVE]) == 1
