"""The device registry on both databases: handlers save states and stage their events in one transaction,
imports are all or nothing, and the gateway's and scheduler's queries find the right devices."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.config import ServiceSettings
from amiflow_schemas import Envelope, EventPayload, decode_event
from amiflow_schemas.events.registry import GatewayKind, MaintenanceState, MeterStatus, SimCardAspect
from amiflow_schemas.primitives import Unit, Utility
from ingest import registry_app as handlers
from ingest.adapters import db
from ingest.adapters import registry_db as rdb
from ingest.adapters.registry_csv import METERS, SIM_CARDS, read_rows
from ingest.core.registry import (
    GatewayDetails,
    MeterDetails,
    RegistryConflict,
    RegistryRefused,
    SimCardDetails,
)
from ingest.core.registry_meters import MeterSwap
from ingest.main import build_runtime
from sqlalchemy import delete, func, select

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
WATER = MeterDetails(Utility.WATER, "cjt188-water-2004", "00000012345678", Unit.M3, Decimal("0.01"), 8,
                     gateway_id="COL-1", channel="1")
ICCID_A, ICCID_B = "89860412345678901234", "89860412345678905678"


@pytest.fixture
async def runtime(database_url: str) -> Any:
    runtime = build_runtime(ServiceSettings(database_url=database_url), "test")
    runtime.clock = FrozenClock(NOW)
    await runtime.migrate()
    yield runtime
    await runtime.engine.dispose()


async def staged(runtime: Any) -> list[tuple[str, bytes, Envelope[EventPayload]]]:
    """The outbox as (topic, key, decoded event), oldest first."""
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(db.outbox).order_by(db.outbox.c.id))).all()
    return [(row.topic, row.message_key, decode_event(row.message_value)) for row in rows]


async def drain(runtime: Any) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(delete(db.outbox))


async def network(runtime: Any, tenant: str = "t1") -> None:
    await handlers.register_gateway(runtime, tenant, "DTU-1", GatewayDetails(GatewayKind.DTU, f"REG-{tenant}"))
    await handlers.register_gateway(runtime, tenant, "COL-1", GatewayDetails(
        GatewayKind.COLLECTOR, parent_gateway_id="DTU-1", channel="RS485-1"))


async def test_each_registry_change_stages_exactly_its_state_carrying_event(runtime: Any) -> None:
    await network(runtime)
    meter = await handlers.register_meter(runtime, "t1", "WM-1", WATER)
    unchanged = await handlers.update_meter(runtime, "t1", "WM-1", WATER)

    events = await staged(runtime)

    assert [(topic, key) for topic, key, _ in events] == [
        ("amiflow.registry.devices", b"t1/gateway/DTU-1"), ("amiflow.registry.devices", b"t1/gateway/COL-1"),
        ("amiflow.registry.devices", b"t1/meter/WM-1")]
    last = events[-1][2]
    assert (last.event_type, last.tenant_id, last.producer, last.occurred_at) == ("MeterDefined", "t1", "ingest", NOW)
    assert last.payload.meter.multiplier == Decimal("0.01")  # type: ignore[attr-defined]
    assert unchanged == meter and meter.revision == 1


async def test_a_replacement_stages_the_old_meters_final_state_and_the_new_meter(runtime: Any) -> None:
    await network(runtime)
    await handlers.register_meter(runtime, "t1", "WM-1", WATER)
    await drain(runtime)
    swap = MeterSwap("WM-2", "00000087654321", NOW, Decimal("102.40"), NOW + timedelta(minutes=20), Decimal("0"))

    old, new = await handlers.replace_meter(runtime, "t1", "WM-1", swap)

    (_, old_key, replaced), (_, new_key, defined) = await staged(runtime)
    assert (old_key, replaced.event_type, replaced.payload.meter.status) == (  # type: ignore[attr-defined]
        b"t1/meter/WM-1", "MeterReplaced", MeterStatus.REMOVED)
    assert (new_key, defined.event_type, defined.payload.meter.replaces_meter_id) == (  # type: ignore[attr-defined]
        b"t1/meter/WM-2", "MeterDefined", "WM-1")
    assert replaced.correlation_id == defined.correlation_id
    async with runtime.sessions() as session:
        assert await rdb.meter(session, "t1", "WM-1") == old and old.removal is not None
        assert await rdb.meter_by_address(session, "t1", "DTU-1", "00000087654321") == new
        assert await rdb.meter_by_address(session, "t1", "DTU-1", WATER.bus_address) is None


async def test_the_gateways_queries_find_meters_behind_a_dtu_and_its_collectors(runtime: Any) -> None:
    for tenant in ("t1", "t2"):
        await network(runtime, tenant)
        await handlers.register_meter(runtime, tenant, "WM-1", WATER)
    await handlers.register_meter(runtime, "t1", "WM-2", replace(WATER, bus_address="22", gateway_id="DTU-1",
                                                                 channel=None))
    await handlers.register_meter(runtime, "t1", "WM-3", replace(WATER, bus_address="33", gateway_id=None,
                                                                 channel=None))
    await handlers.remove_meter(runtime, "t1", "WM-2", None, None)

    async with runtime.sessions() as session:
        dtu = await rdb.gateway_by_registration_id(session, "REG-t2")
        behind = await rdb.meters_behind(session, "t1", "DTU-1")
        on_collector = await rdb.meters_behind(session, "t1", "COL-1")
        found = await rdb.meter_by_address(session, "t1", "DTU-1", WATER.bus_address)
        scheduled = await rdb.active_meters(session)
        assert await rdb.meter_by_address(session, "t1", "DTU-1", "22") is None  # removed
        assert await rdb.gateway_by_registration_id(session, "nobody") is None

    assert dtu is not None and (dtu.tenant_id, dtu.gateway_id) == ("t2", "DTU-1")
    assert [m.meter_id for m in behind] == ["WM-1"] == [m.meter_id for m in on_collector]
    assert found is not None and found.details == WATER and found.tenant_id == "t1"
    assert [(m.tenant_id, m.meter_id) for m in scheduled] == [("t1", "WM-1"), ("t1", "WM-3"), ("t2", "WM-1")]


async def test_a_registration_id_belongs_to_one_gateway_across_all_tenants(runtime: Any) -> None:
    await network(runtime, "t1")

    with pytest.raises(RegistryConflict, match="already used by another gateway"):
        await handlers.register_gateway(runtime, "t2", "DTU-9", GatewayDetails(GatewayKind.DTU, "REG-t1"))


async def test_concurrent_registrations_of_one_meter_leave_one_meter_and_one_event(runtime: Any) -> None:
    await network(runtime)
    await drain(runtime)

    results = await asyncio.gather(*[handlers.register_meter(runtime, "t1", "WM-1", WATER) for _ in range(4)],
                                   return_exceptions=True)

    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, RegistryConflict) for r in results if isinstance(r, Exception))
    assert len(await staged(runtime)) == 1


async def test_a_card_swap_unbinds_the_old_card_and_both_keep_their_history(runtime: Any) -> None:
    await network(runtime)
    plan = SimCardDetails(msisdn="1064812345678", data_plan="30 MB", gateway_id="DTU-1")
    await handlers.register_sim_card(runtime, "t1", ICCID_A, plan)
    await handlers.register_sim_card(runtime, "t1", ICCID_B, plan)
    await handlers.update_sim_card(runtime, "t1", ICCID_B, replace(plan, used_bytes=4096))  # usage: no history

    async with runtime.sessions() as session:
        cards = await rdb.sim_cards_by_id(session, "t1", [ICCID_A, ICCID_B])
        history_a = await rdb.sim_card_history(session, "t1", ICCID_A)
        history_b = await rdb.sim_card_history(session, "t1", ICCID_B)

    a, b = cards[ICCID_A], cards[ICCID_B]
    assert (a.details.gateway_id, b.details.gateway_id, b.revision) == (None, "DTU-1", 2)
    assert [(h.card.revision, h.changed) for h in history_a] == [(1, ()), (2, (SimCardAspect.CARD,))]
    assert [h.card.revision for h in history_b] == [1]
    card_events = [e.payload for _, _, e in await staged(runtime) if e.event_type == "SimCardDefined"]
    assert [(c.sim_card.iccid, c.revision) for c in card_events] == [  # type: ignore[attr-defined]
        (ICCID_A, 1), (ICCID_A, 2), (ICCID_B, 1), (ICCID_B, 2)]


async def test_an_import_with_one_bad_row_applies_nothing_and_lists_it(runtime: Any) -> None:
    await network(runtime)
    await drain(runtime)
    rows = read_rows("meter_id,utility,profile,bus_address,unit,gateway_id\n"
                     + "".join(f"WM-{n},water,p,{n},m3,COL-1\n" for n in range(1, 50))
                     + "WM-50,water,p,1,m3,COL-1\n", METERS, 1000)

    dry = await handlers.import_sheet(runtime, "t1", METERS, rows, dry_run=True)
    real = await handlers.import_sheet(runtime, "t1", METERS, rows, dry_run=False)

    assert [(p.line, p.device_id) for p in dry.problems] == [(51, "WM-50")] == [
        (p.line, p.device_id) for p in real.problems]
    async with runtime.sessions() as session:
        assert await rdb.list_meters(session, "t1") == []
    assert await staged(runtime) == []


async def test_a_good_import_applies_every_row_in_one_go_and_a_dry_run_applies_none(runtime: Any) -> None:
    await network(runtime)
    await drain(runtime)
    text = "meter_id,utility,profile,bus_address,unit,gateway_id\n" + "".join(
        f"WM-{n},water,p,{n},m3,COL-1\n" for n in range(1, 1284))
    rows = read_rows(text, METERS, 2000)

    dry = await handlers.import_sheet(runtime, "t1", METERS, rows, dry_run=True)
    assert (dry.registered, await staged(runtime)) == (1283, [])
    real = await handlers.import_sheet(runtime, "t1", METERS, rows, dry_run=False)
    again = await handlers.import_sheet(runtime, "t1", METERS, rows, dry_run=False)

    async with runtime.engine.connect() as conn:
        stored = (await conn.execute(select(func.count()).select_from(rdb.registry_meters))).scalar()
    assert (real.registered, again.unchanged, stored, len(await staged(runtime))) == (1283, 1283, 1283, 1283)


async def test_an_import_may_swap_two_cards_between_gateways(runtime: Any) -> None:
    await network(runtime)
    await handlers.register_gateway(runtime, "t1", "DTU-2", GatewayDetails(GatewayKind.DTU, "REG-2"))
    await handlers.register_sim_card(runtime, "t1", ICCID_A, SimCardDetails(gateway_id="DTU-1"))
    await handlers.register_sim_card(runtime, "t1", ICCID_B, SimCardDetails(gateway_id="DTU-2"))
    rows = read_rows(f"iccid,gateway_id\n{ICCID_A},DTU-2\n{ICCID_B},DTU-1\n", SIM_CARDS, 10)

    plan = await handlers.import_sheet(runtime, "t1", SIM_CARDS, rows, dry_run=False)

    assert plan.problems == () and plan.updated == 2
    async with runtime.sessions() as session:
        cards = await rdb.sim_cards_by_id(session, "t1", [ICCID_A, ICCID_B])
    assert (cards[ICCID_A].details.gateway_id, cards[ICCID_B].details.gateway_id) == ("DTU-2", "DTU-1")


async def test_refusals_leave_the_database_and_outbox_untouched(runtime: Any) -> None:
    await network(runtime)
    await handlers.register_meter(runtime, "t1", "WM-2", WATER)
    await drain(runtime)
    retired = GatewayDetails(GatewayKind.COLLECTOR, parent_gateway_id="DTU-1", channel="RS485-1",
                             maintenance=MaintenanceState.RETIRED)

    with pytest.raises(RegistryRefused, match="kWh is not a water unit"):
        await handlers.register_meter(runtime, "t1", "WM-1", replace(WATER, unit=Unit.KWH, bus_address="11"))
    with pytest.raises(RegistryRefused, match="move them before retiring"):
        await handlers.update_gateway(runtime, "t1", "COL-1", retired)

    assert await staged(runtime) == []
    async with runtime.sessions() as session:
        collector = await rdb.gateway(session, "t1", "COL-1")
    assert collector is not None and collector.revision == 1
