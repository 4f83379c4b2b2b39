"""The console's fleet endpoints on the real ingest app and both databases: the overview's counts, the meters
list's search and state, the map's positions and the topology, against DTU links that are up, down, stale
or never there, a collector under a DTU, a removed meter and meters read over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import auth_headers
from ingest.adapters import gateway_db
from ingest.adapters.gateway_db import LinkRecord
from ingest.config import IngestSettings
from ingest.main import api

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai, the default zone
INSTANCE = "gw-test"

GATEWAYS = [
    {"gateway_id": "DTU-ON", "kind": "dtu", "registration_id": "860000000000001"},
    {"gateway_id": "COL-ON", "kind": "collector", "parent_gateway_id": "DTU-ON", "channel": "RS485-1"},
    {"gateway_id": "DTU-OFF", "kind": "dtu", "registration_id": "860000000000002"},
    {"gateway_id": "DTU-NEVER", "kind": "dtu", "registration_id": "860000000000003"},
    {"gateway_id": "CON-STALE", "kind": "concentrator", "registration_id": "860000000000004"},
    {"gateway_id": "DTU-RET", "kind": "dtu", "registration_id": "860000000000005"},
]


def water(meter_id: str, address: int, **extra: Any) -> dict[str, Any]:
    return {"meter_id": meter_id, "utility": "water", "profile": "cjt188-water-2004",
            "bus_address": f"{address:014d}", "unit": "m3", **extra}


def place(building: str, room: str, latitude: str, longitude: str) -> dict[str, Any]:
    return {"groups": {"building": building}, "room": room, "premise": f"{building}, Room {room}",
            "location": {"latitude": latitude, "longitude": longitude}}


METERS = [
    water("M-ON-1", 1, gateway_id="DTU-ON", **place("Block A", "1203", "22.543100", "114.057900")),
    {"meter_id": "M-ON-2", "utility": "electricity", "profile": "dlt645-single-phase", "bus_address": "000000000002",
     "unit": "kWh", "gateway_id": "COL-ON", **place("Block A", "1204", "22.543200", "114.058000")},
    water("M-OFF", 3, gateway_id="DTU-OFF", **place("Block B", "0101", "22.544000", "114.056000")),
    water("M-NEVER", 4, gateway_id="DTU-NEVER"),
    water("M-STALE", 5, gateway_id="CON-STALE", **place("Block C", "0301", "22.541000", "114.060500")),
    water("M-REMOVED", 6, gateway_id="DTU-OFF", **place("Block B", "0102", "22.544100", "114.056100")),
    water("H-HOURLY-FRESH", 7, schedule="hourly"),
    water("H-HOURLY-STALE", 8, schedule="hourly"),
    water("H-DAILY-OK", 9, schedule="daily 01:00"),
    water("H-SILENT", 10),
]
SIM_CARDS = [
    {"iccid": "8986000000000000001", "gateway_id": "DTU-ON", "expires_on": "2026-12-01", "quota_bytes": 100,
     "used_bytes": 150},
    {"iccid": "8986000000000000002", "expires_on": "2026-11-20"},
    {"iccid": "8986000000000000003"},
]


@pytest.fixture
async def fleet(database_url: str) -> Any:
    """The fleet above, with links and readings as of NOW; yields the client."""
    app = api(IngestSettings(database_url=database_url))
    runtime = app.state.runtime
    clock = runtime.clock = FrozenClock(NOW - timedelta(hours=3))
    await runtime.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://ingest",
                                 headers=auth_headers("t1")) as client:
        for body in GATEWAYS:
            assert (await client.post("/v1/gateways", json=body)).status_code == 201, body
        assert (await client.delete("/v1/gateways/DTU-RET")).status_code == 200
        for body in METERS:
            assert (await client.post("/v1/meters", json=body)).status_code == 201, body
        assert (await client.delete("/v1/meters/M-REMOVED")).status_code == 200
        for body in SIM_CARDS:
            assert (await client.post("/v1/sim-cards", json=body)).status_code == 201, body
        await _read(client, clock.now(), "H-HOURLY-STALE", "H-DAILY-OK", status={"valve": "closed", "battery": "low"})
        clock.advance(timedelta(hours=3))
        await _read(client, clock.now(), "H-HOURLY-FRESH")
        await _links(runtime)
        yield client
    await runtime.engine.dispose()


async def _read(client: httpx.AsyncClient, now: datetime, *meter_ids: str,
                status: dict[str, Any] | None = None) -> None:
    at = now - timedelta(minutes=5)
    items = [{"meter_id": m, "utility": "water", "measured_at": at.isoformat(),
              "registers": [{"register": "total", "value": "1.5", "unit": "m3"}],
              **({"status": status} if status else {})} for m in meter_ids]
    answer = await client.post("/v1/readings", json={"readings": items})
    assert answer.status_code == 200 and answer.json()["accepted"] == len(items), answer.text


async def _links(runtime: Any) -> None:
    """DTU-ON held now; DTU-OFF connected and closed; CON-STALE's row says online but aged (its process died)."""
    async with runtime.sessions() as session, session.begin():
        for gateway_id, at in (("DTU-ON", NOW - timedelta(seconds=20)), ("DTU-OFF", NOW - timedelta(hours=2)),
                               ("CON-STALE", NOW - timedelta(minutes=10))):
            await gateway_db.mark_online(session, tenant_id="t1", gateway_id=gateway_id, remote="10.0.0.1:5000",
                                         instance=INSTANCE, at=at)
        closed = LinkRecord("t1", "DTU-OFF", NOW - timedelta(hours=2), 12, NOW - timedelta(hours=1))
        await gateway_db.mark_many_offline(session, [closed], INSTANCE)


async def _meters(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/v1/meters", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["meters"])


async def test_the_overview_counts_meters_by_their_carrier_link_or_last_reading(fleet: httpx.AsyncClient) -> None:
    answer = await fleet.get("/v1/overview")

    assert answer.status_code == 200
    body = answer.json()
    assert body["meters"] == {"total": 10, "active": 9, "by_status": {"active": 9, "removed": 1},
                              "by_utility": {"electricity": 1, "water": 8}, "online": 4, "offline": 3,
                              "never_seen": 2, "read_today": 3}
    assert body["gateways"] == {"total": 6, "by_kind": {"dtu": 4, "concentrator": 1, "collector": 1},
                                "by_maintenance": {"in_service": 5, "maintenance": 0, "retired": 1},
                                "online": 1, "offline": 2, "never_connected": 1}
    assert body["sim_cards"] == {"total": 3, "in_gateway": 1, "spare": 2, "expired": 1, "expiring_soon": 1,
                                 "over_quota": 1}
    assert datetime.fromisoformat(body["as_of"]) == NOW


async def test_each_meter_carries_its_connection_place_and_last_status(fleet: httpx.AsyncClient) -> None:
    meters = {m["meter_id"]: m for m in await _meters(fleet)}

    assert {k: m["connection"] for k, m in meters.items()} == {
        "H-DAILY-OK": "online", "H-HOURLY-FRESH": "online", "H-HOURLY-STALE": "offline", "H-SILENT": "never_seen",
        "M-NEVER": "never_seen", "M-OFF": "offline", "M-ON-1": "online", "M-ON-2": "online", "M-REMOVED": None,
        "M-STALE": "offline"}
    on_collector = meters["M-ON-2"]
    assert (on_collector["gateway_id"], on_collector["link_gateway_id"], on_collector["online"]) == (
        "COL-ON", "DTU-ON", True)
    assert on_collector["location"] == {"latitude": "22.5432", "longitude": "114.058"}
    assert (on_collector["groups"]["building"], on_collector["room"]) == ("Block A", "1204")
    daily = meters["H-DAILY-OK"]
    assert daily["link_gateway_id"] is None and daily["online"] is True
    assert datetime.fromisoformat(daily["last_reading_received_at"]) == NOW - timedelta(hours=3)
    assert daily["device_status"]["valve"] == "closed" and daily["device_status"]["battery"]["level"] == "low"
    assert meters["H-SILENT"]["device_status"] is None and meters["H-SILENT"]["last_reading_received_at"] is None
    single = await fleet.get("/v1/meters/M-ON-2")
    assert single.status_code == 200 and single.json() == on_collector


SEARCHES: list[tuple[dict[str, str], list[str]]] = [
    ({"q": "m-on"}, ["M-ON-1", "M-ON-2"]),
    ({"q": "00000000000007"}, ["H-HOURLY-FRESH"]),
    ({"q": "block b, room 0101"}, ["M-OFF"]),
    ({"q": "1204"}, ["M-ON-2"]),
    ({"q": "%"}, []),  # a LIKE wildcard is a character like any other
    ({"utility": "electricity"}, ["M-ON-2"]),
    ({"building": "Block B", "status": "active"}, ["M-OFF"]),
    ({"gateway_id": "COL-ON"}, ["M-ON-2"]),
    ({"behind_gateway_id": "DTU-ON"}, ["M-ON-1", "M-ON-2"]),
    ({"on_gateway": "false"}, ["H-DAILY-OK", "H-HOURLY-FRESH", "H-HOURLY-STALE", "H-SILENT"]),
    ({"connection": "offline"}, ["H-HOURLY-STALE", "M-OFF", "M-STALE"]),
    ({"status": "removed"}, ["M-REMOVED"]),
]


async def test_the_front_desk_finds_meters_by_id_address_place_and_state(fleet: httpx.AsyncClient) -> None:
    # One fleet for every search: building it is most of the test's time.
    found = {str(params): [m["meter_id"] for m in await _meters(fleet, **params)] for params, _ in SEARCHES}

    assert found == {str(params): expected for params, expected in SEARCHES}


async def test_meters_are_paged_in_id_order_with_a_total_on_request(fleet: httpx.AsyncClient) -> None:
    seen, after, totals = [], None, set()
    while True:
        answer = (await fleet.get("/v1/meters", params={"limit": 3, "with_total": "true",
                                                        **({"after": after} if after else {})})).json()
        seen += [m["meter_id"] for m in answer["meters"]]
        totals.add(answer["total"])
        after = answer["next_after"]
        if after is None:
            break
    plain = (await fleet.get("/v1/meters", params={"limit": 3})).json()

    assert seen == sorted(m["meter_id"] for m in METERS) and totals == {10}
    assert plain["total"] is None


async def test_positions_page_through_every_located_meter_with_the_bounds_first(fleet: httpx.AsyncClient) -> None:
    first = (await fleet.get("/v1/meters/positions", params={"limit": 2})).json()
    second = (await fleet.get("/v1/meters/positions", params={"limit": 2, "after": first["next_after"]})).json()
    third = (await fleet.get("/v1/meters/positions", params={"limit": 2, "after": second["next_after"]})).json()
    electric = (await fleet.get("/v1/meters/positions", params={"utility": "electricity"})).json()

    items = first["items"] + second["items"] + third["items"]
    assert [i["meter_id"] for i in items] == ["M-OFF", "M-ON-1", "M-ON-2", "M-REMOVED", "M-STALE"]
    assert third["next_after"] is None
    assert first["bounds"] == {"min_lat": "22.541", "min_lon": "114.056", "max_lat": "22.5441",
                               "max_lon": "114.0605"} and first["located"] == 5
    assert second["bounds"] is None and second["located"] is None
    assert items[1] == {"meter_id": "M-ON-1", "utility": "water", "latitude": "22.5431", "longitude": "114.0579",
                        "building": "Block A", "status": "active", "online": True, "connection": "online"}
    assert (items[3]["status"], items[3]["online"], items[3]["connection"]) == ("removed", False, None)
    assert [i["meter_id"] for i in electric["items"]] == ["M-ON-2"] and electric["located"] == 1


async def test_a_gateways_topology_shows_each_node_online_and_its_sim_card(fleet: httpx.AsyncClient) -> None:
    body = (await fleet.get("/v1/gateways/DTU-ON/topology")).json()
    collector = (await fleet.get("/v1/gateways/COL-ON")).json()
    listed = {g["gateway_id"]: g for g in (await fleet.get("/v1/gateways")).json()["gateways"]}

    assert (body["gateway"]["link_state"], body["gateway"]["online"]) == ("online", True)
    assert body["gateway"]["connection"]["online"] is True
    assert [(c["gateway_id"], c["online"]) for c in body["children"]] == [("COL-ON", True)]
    assert [(m["meter_id"], m["connection"]) for m in body["meters"]] == [("M-ON-1", "online"), ("M-ON-2", "online")]
    assert [c["iccid"] for c in body["sim_cards"]] == ["8986000000000000001"]
    assert (collector["link_state"], collector["online"], collector["connection"]) == ("online", True, None)
    assert {k: g["link_state"] for k, g in listed.items()} == {
        "CON-STALE": "offline", "COL-ON": "online", "DTU-NEVER": "never_connected", "DTU-OFF": "offline",
        "DTU-ON": "online", "DTU-RET": None}


async def test_the_tenant_topology_pages_roots_and_lists_meters_behind_no_gateway_first(
        fleet: httpx.AsyncClient) -> None:
    first = (await fleet.get("/v1/topology", params={"limit": 2, "without_gateway_limit": 3})).json()
    second = (await fleet.get("/v1/topology", params={"limit": 2, "after": first["next_after"]})).json()
    counted = (await fleet.get("/v1/topology", params={"meters": "false", "after": "DTU-NEVER"})).json()

    assert [r["gateway"]["gateway_id"] for r in first["roots"]] == ["CON-STALE", "DTU-NEVER"]
    assert [r["gateway"]["gateway_id"] for r in second["roots"]] == ["DTU-OFF", "DTU-ON"]
    assert first["without_gateway"]["count"] == 4 and first["without_gateway"]["next_after"] == "H-HOURLY-STALE"
    assert [m["meter_id"] for m in first["without_gateway"]["meters"]] == [
        "H-DAILY-OK", "H-HOURLY-FRESH", "H-HOURLY-STALE"]
    assert second["without_gateway"] is None and second["next_after"] == "DTU-ON"
    off, on = second["roots"]
    assert (off["meter_count"], [m["meter_id"] for m in off["meters"]]) == (1, ["M-OFF"])  # not the removed one
    assert off["gateway"]["link_state"] == "offline" and off["gateway"]["connection"]["online"] is False
    assert on["sim_card"]["iccid"] == "8986000000000000001" and on["gateway"]["online"] is True
    assert [(m["meter_id"], m["online"]) for m in on["meters"]] == [("M-ON-1", True)]
    [collector] = on["collectors"]
    assert collector["gateway"]["gateway_id"] == "COL-ON" and collector["gateway"]["online"] is True
    assert [(m["meter_id"], m["connection"]) for m in collector["meters"]] == [("M-ON-2", "online")]
    assert [(r["meter_count"], r["meters"]) for r in counted["roots"]] == [(1, []), (1, [])]
    assert counted["roots"][1]["collectors"][0]["meter_count"] == 1
