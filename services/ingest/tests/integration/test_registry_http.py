"""The registry's HTTP API on the real ingest app and both databases (the lifespan, and so Kafka, not started)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import auth_headers, token_for
from amiflow_schemas import decode_event
from ingest.adapters import db
from ingest.config import IngestSettings
from ingest.main import api
from sqlalchemy import select

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, tzinfo=UTC)
METER = {"meter_id": "WM-1", "utility": "water", "profile": "cjt188-water-2004", "bus_address": "0000 0012 3456 78",
         "unit": "m3", "multiplier": "0.001", "dial_count": 8, "gateway_id": "COL-1", "channel": "1",
         "schedule": "daily 01:00 jitter 30m", "location": {"latitude": "30.572815", "longitude": "104.066801"},
         "groups": {"district_metered_area": "DMA-07"}, "di_order": "1F90"}


@pytest.fixture
async def api_client(database_url: str) -> Any:
    app = api(IngestSettings(database_url=database_url))
    runtime = app.state.runtime
    runtime.clock = FrozenClock(NOW)
    await runtime.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://ingest",
                                 headers=auth_headers("t1")) as client:
        yield client
    await runtime.engine.dispose()


async def network(client: httpx.AsyncClient) -> None:
    for body in ({"gateway_id": "DTU-1", "kind": "dtu", "registration_id": "861234567890123", "model": "USR-G780"},
                 {"gateway_id": "COL-1", "kind": "collector", "parent_gateway_id": "DTU-1", "channel": "RS485-1"}):
        assert (await client.post("/v1/gateways", json=body)).status_code == 201


async def test_a_meter_is_registered_read_changed_and_hidden_from_other_tenants(api_client: httpx.AsyncClient) -> None:
    await network(api_client)

    created = await api_client.post("/v1/meters", json=METER)
    put_body = {k: v for k, v in METER.items() if k != "meter_id"} | {"room": "1201"}
    changed = await api_client.put("/v1/meters/WM-1", json=put_body)
    again = await api_client.put("/v1/meters/WM-1", json=put_body)
    elsewhere = await api_client.get("/v1/meters/WM-1", headers={"x-tenant-id": "t2"})
    page = await api_client.get("/v1/meters", params={"gateway_id": "COL-1"})

    assert created.status_code == 201
    assert created.json()["revision"] == 1
    assert created.json()["bus_address"] == "00000012345678" and created.json()["di_order"] == "1F 90"
    assert created.json()["schedule"] == {"kind": "daily", "at_local": "01:00", "jitter_s": 1800}
    assert (changed.status_code, changed.json()["revision"], changed.json()["room"]) == (200, 2, "1201")
    assert again.json()["revision"] == 2  # the same details again: no change, no event
    assert elsewhere.status_code == 404
    assert [m["meter_id"] for m in page.json()["meters"]] == ["WM-1"] and page.json()["next_after"] is None


async def test_bad_input_is_answered_with_every_reason(api_client: httpx.AsyncClient) -> None:
    await network(api_client)
    await api_client.post("/v1/meters", json=METER)

    invalid = await api_client.post("/v1/meters", json={**METER, "meter_id": "WM-2", "unit": "kWh",
                                                        "profile": "bad profile"})
    taken = await api_client.post("/v1/meters", json={**METER, "meter_id": "WM-3"})
    duplicate = await api_client.post("/v1/meters", json=METER)
    unreadable = await api_client.post("/v1/meters", json={**METER, "schedule": "sometimes", "multiplier": 1.5})
    unknown = await api_client.put("/v1/meters/WM-404", json={k: v for k, v in METER.items() if k != "meter_id"})
    no_such_time = await api_client.post("/v1/meters", json={**METER, "meter_id": "WM-5", "schedule": {
        "kind": "daily", "at_local": "25:00"}})

    assert invalid.status_code == 422
    assert [r.split()[0] for r in invalid.json()["reasons"]] == ["bus_address:", "unit", "profile:"]
    assert taken.status_code == 409 and "already used by meter WM-1" in taken.json()["reasons"][0]
    assert duplicate.status_code == 409
    assert unreadable.status_code == 422 and {e["location"] for e in unreadable.json()["errors"]} == {
        "body.schedule", "body.multiplier"}
    assert unknown.status_code == 404
    assert no_such_time.status_code == 422 and "25:00 is not a time of day" in no_such_time.text


async def test_each_change_leaves_exactly_its_events_in_the_outbox(api_client: httpx.AsyncClient) -> None:
    await network(api_client)
    await api_client.post("/v1/meters", json=METER)
    await api_client.post("/v1/meters", json={**METER, "unit": "kWh"})  # refused: nothing staged
    replaced = await api_client.post("/v1/meters/WM-1/replacement", json={
        "new_meter_id": "WM-2", "new_bus_address": "00000087654321", "removed_at": "2026-11-21T08:00:00+08:00",
        "removal_reading": "102.400", "installed_at": "2026-11-21T08:20:00+08:00", "installation_reading": "0"})

    runtime = api_client._transport.app.state.runtime  # type: ignore[attr-defined]
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(db.outbox).where(db.outbox.c.topic != "amiflow.audit")  # not the audit trail
                                   .order_by(db.outbox.c.id))).all()
    events = [decode_event(row.message_value) for row in rows]

    assert replaced.status_code == 201 and replaced.json()["removed"]["status"] == "removed"
    assert [(e.event_type, e.key) for e in events] == [
        ("GatewayDefined", "t1/gateway/DTU-1"), ("GatewayDefined", "t1/gateway/COL-1"),
        ("MeterDefined", "t1/meter/WM-1"), ("MeterReplaced", "t1/meter/WM-1"), ("MeterDefined", "t1/meter/WM-2")]
    assert {row.topic for row in rows} == {"amiflow.registry.devices"}
    assert events[3].payload.replacement.removal_reading == events[3].payload.meter.removal.removal_reading  # type: ignore[attr-defined]


async def test_the_topology_shows_parent_collectors_meters_and_sim_card(api_client: httpx.AsyncClient) -> None:
    await network(api_client)
    await api_client.post("/v1/meters", json=METER)
    card = await api_client.post("/v1/sim-cards", json={"iccid": "8986 0412 3456 7890 1234", "gateway_id": "DTU-1",
                                                        "msisdn": "1064812345678", "quota_bytes": 31457280})

    dtu = (await api_client.get("/v1/gateways/DTU-1/topology")).json()
    collector = (await api_client.get("/v1/gateways/COL-1/topology")).json()

    assert card.status_code == 201 and card.json()["iccid"] == "89860412345678901234"
    assert [c["gateway_id"] for c in dtu["children"]] == ["COL-1"] and dtu["parent"] is None
    assert [(m["meter_id"], m["gateway_id"], m["channel"]) for m in dtu["meters"]] == [("WM-1", "COL-1", "1")]
    assert [c["iccid"] for c in dtu["sim_cards"]] == ["89860412345678901234"]
    assert collector["parent"]["gateway_id"] == "DTU-1" and collector["children"] == []
    retire = await api_client.delete("/v1/gateways/COL-1")
    assert retire.status_code == 422 and "move them before retiring" in retire.json()["reasons"][0]


async def test_sim_card_changes_are_kept_as_history(api_client: httpx.AsyncClient) -> None:
    await network(api_client)
    iccid = "89860412345678901234"
    await api_client.post("/v1/sim-cards", json={"iccid": iccid, "msisdn": "1064812345678", "data_plan": "30 MB"})
    await api_client.put(f"/v1/sim-cards/{iccid}/binding", json={"gateway_id": "DTU-1"})
    await api_client.put(f"/v1/sim-cards/{iccid}", json={"msisdn": "1064899999999", "data_plan": "100 MB",
                                                         "gateway_id": "DTU-1", "used_bytes": 10})

    history = (await api_client.get(f"/v1/sim-cards/{iccid}/history")).json()
    collector = await api_client.put(f"/v1/sim-cards/{iccid}/binding", json={"gateway_id": "COL-1"})

    assert [(h["revision"], h["change"], h["changed"]) for h in history] == [
        (1, "registered", []), (2, "updated", ["card"]), (3, "updated", ["number", "plan", "usage"])]
    assert collector.status_code == 422
    assert (await api_client.get(f"/v1/sim-cards/{iccid}/history", headers={"x-tenant-id": "t2"})).status_code == 404


async def test_labels_come_as_svg_and_png_for_meters_and_gateways(api_client: httpx.AsyncClient) -> None:
    await network(api_client)
    await api_client.post("/v1/meters", json=METER)

    svg = await api_client.get("/v1/meters/WM-1/label.svg")
    png = await api_client.get("/v1/gateways/DTU-1/label.png")
    missing = await api_client.get("/v1/meters/WM-1/label.png", headers={"x-tenant-id": "t2"})

    assert svg.headers["content-type"] == "image/svg+xml" and "amiflow://t1/meter/WM-1" in svg.text
    assert "cjt188-water-2004 · 00000012345678" in svg.text
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert missing.status_code == 404


METERS_CSV = ("meter_id,utility,profile,bus_address,unit,gateway_id,schedule\n"
              "WM-1,water,cjt188-water-2004,11,m3,COL-1,hourly\n"
              "WM-2,water,cjt188-water-2004,12,kWh,COL-1,hourly\n"
              "WM-3,water,cjt188-water-2004,11,m3,COL-1,weekly\n"
              "WM-4,water,cjt188-water-2004,14,m3,DTU-9,push\n")


async def test_a_dry_run_reports_every_bad_row_with_its_line_and_applies_nothing(api_client: httpx.AsyncClient) -> None:
    await network(api_client)

    dry = await api_client.post("/v1/registry/import", params={"kind": "meters", "dry_run": "true"},
                                content=METERS_CSV, headers={"content-type": "text/csv"})
    real = await api_client.post("/v1/registry/import", params={"kind": "meters"},
                                 files={"file": ("meters.csv", METERS_CSV.encode(), "text/csv")})

    assert dry.status_code == 200 and real.status_code == 422
    for report in (dry.json(), real.json()):
        assert [(p["line"], p["device_id"]) for p in report["problems"]] == [(3, "WM-2"), (4, "WM-3"), (5, "WM-4")]
        assert report["applied"] is False
    assert (await api_client.get("/v1/meters")).json()["meters"] == []


async def test_an_export_imports_back_unchanged_and_a_good_import_applies(api_client: httpx.AsyncClient) -> None:
    await network(api_client)
    good = (METERS_CSV.replace(",kWh,", ",m3,").replace("11,m3,COL-1,weekly", "13,m3,COL-1,daily 02:00")
            .replace("DTU-9", "DTU-1"))

    applied = await api_client.post("/v1/registry/import?kind=meters", content=good,
                                    headers={"content-type": "text/csv"})
    exported = await api_client.get("/v1/registry/export", params={"kind": "meters"})
    again = await api_client.post("/v1/registry/import?kind=meters&dry_run=true", content=exported.content,
                                  headers={"content-type": "text/csv"})
    gateways = await api_client.get("/v1/registry/export?kind=gateways")

    assert applied.status_code == 200, applied.text
    assert (applied.json()["applied"], applied.json()["registered"]) == (True, 4)
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[0].startswith("meter_id,utility,profile,bus_address")
    assert len(exported.text.splitlines()) == 5
    assert (again.json()["unchanged"], again.json()["problems"]) == (4, [])
    assert [line.split(",")[0] for line in gateways.text.splitlines()] == ["gateway_id", "COL-1", "DTU-1"]


def _operator(sites: list[str], duties: list[str], subject: str = "op-1") -> dict[str, str]:
    token = token_for("t1", ("operator",), subject=subject, sites=sites, duties=duties)
    return {"Authorization": f"Bearer {token}", "x-tenant-id": "t1"}


async def test_an_operator_changes_only_meters_of_their_sites_and_duties(api_client: httpx.AsyncClient) -> None:
    await network(api_client)
    east = {**METER, "groups": {"building": "East"}}
    assert (await api_client.post("/v1/meters", json=east)).status_code == 201
    details = {k: v for k, v in east.items() if k != "meter_id"}

    west_operator = _operator(["West"], ["water"])
    power_operator = _operator(["East"], ["electricity"])
    east_operator = _operator(["East"], ["water"])
    refused = [await api_client.put("/v1/meters/WM-1", json=details, headers=h)
               for h in (west_operator, power_operator)]
    west = {**east, "meter_id": "WM-9", "groups": {"building": "West"}}
    new_elsewhere = await api_client.post("/v1/meters", json=west, headers=east_operator)
    moved_away = await api_client.put("/v1/meters/WM-1", json={**details, "groups": {"building": "West"}},
                                      headers=east_operator)
    removed_by_west = await api_client.delete("/v1/meters/WM-1", headers=west_operator)
    changed = await api_client.put("/v1/meters/WM-1", json={**details, "room": "12"}, headers=east_operator)

    assert [r.status_code for r in refused] == [403, 403]
    assert refused[0].json()["detail"]["problem"] == "out_of_reach"
    assert new_elsewhere.status_code == 403 and moved_away.status_code == 403 and removed_by_west.status_code == 403
    assert changed.status_code == 200 and changed.json()["room"] == "12"
