"""POST /v1/readings with batches: every item answered on its own, repeats are no-ops (both databases)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from amiflow_runtime.testing import asgi_client
from amiflow_schemas import decode_event
from ingest.adapters import db
from ingest.config import IngestSettings
from ingest.main import api
from sqlalchemy import select

pytestmark = pytest.mark.integration


def item(meter: str, hour: int, value: str, **extra: Any) -> dict[str, Any]:
    return {"meter_id": meter, "utility": "water", "measured_at": f"2026-11-21T{hour:02d}:00:00+08:00",
            "registers": [{"register": "total", "value": value, "unit": "m3"}], **extra}


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = api(IngestSettings(database_url=database_url))
    runtime = app.state.runtime  # the lifespan (Kafka) is not started: these tests stop at the outbox
    await runtime.migrate()
    async with asgi_client(app, "http://ingest") as http:
        yield http, runtime
    await runtime.engine.dispose()


async def staged_events(runtime: Any) -> list[Any]:
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(db.outbox).where(db.outbox.c.topic != "amiflow.audit")  # not the audit trail
                                   .order_by(db.outbox.c.id))).all()
    return [decode_event(r.message_value) for r in rows]


async def test_bad_items_are_rejected_one_by_one_and_the_good_ones_accepted(client: Any) -> None:
    http, runtime = client
    batch = [
        item("WM-1", 1, "10"),
        {"meter_id": "WM-2", "utility": "water"},                      # incomplete
        item("WM-3", 1, "5", status={"valve": "closed", "battery": "low", "alarms": ["magnetic_tamper"]}),
        item("WM-4", 1, "1") | {"registers": [{"register": "total", "value": "1", "unit": "kWh"}]},
        item("WM-5", 1, "1") | {"measured_at": "2099-01-01T00:00:00Z"},  # from the future
        item("WM-1", 1, "10.0"),                                        # the first item again
        item("WM-1", 1, "11"),                                          # contradicts the first item
    ]
    response = await http.post("/v1/readings", json={"readings": batch}, headers={"X-Tenant-Id": "market"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["items"]] == [
        "accepted", "rejected", "accepted", "rejected", "rejected", "duplicate", "conflict"]
    assert (body["accepted"], body["rejected"], body["duplicates"], body["conflicts"]) == (2, 3, 1, 1)
    assert "measured_at: Field required" in body["items"][1]["reason"]
    assert "unit" in body["items"][3]["reason"].lower()
    assert "ahead" in body["items"][4]["reason"]
    assert body["items"][5]["event_id"] == body["items"][0]["event_id"]

    events = await staged_events(runtime)
    assert [e.event_type for e in events] == ["ReadingReceived", "ReadingReceived", "DeviceStatusReported"]
    status = events[2]
    assert status.payload.valve.value == "closed" and status.causation_id == events[1].event_id
    assert all(e.tenant_id == "market" for e in events)


async def test_resending_a_whole_batch_changes_nothing(client: Any) -> None:
    http, runtime = client
    batch = {"readings": [item(f"WM-{n}", 2, str(n)) for n in range(50)]}
    first = (await http.post("/v1/readings", json=batch)).json()
    again = (await http.post("/v1/readings", json=batch)).json()
    assert first["accepted"] == 50 and again["duplicates"] == 50 and again["accepted"] == 0
    assert [i["event_id"] for i in first["items"]] == [i["event_id"] for i in again["items"]]
    assert len(await staged_events(runtime)) == 50


async def test_a_batch_of_ten_thousand_is_taken_and_one_more_is_refused(client: Any) -> None:
    http, _ = client
    batch = [item(f"WM-{n % 500}", n // 500, "1") for n in range(10_000)]
    response = await http.post("/v1/readings", json={"readings": batch})
    assert response.status_code == 200 and response.json()["accepted"] == 10_000
    too_many = await http.post("/v1/readings", json={"readings": [*batch, item("WM-x", 1, "1")]})
    assert too_many.status_code == 422
    assert "10000" in too_many.text


async def test_a_pulse_count_becomes_a_register_through_the_meters_pulse_weight(client: Any) -> None:
    from decimal import Decimal

    from amiflow_schemas.primitives import Unit, Utility
    from ingest import registry_app
    from ingest.core.registry import MeterDetails

    http, runtime = client
    await registry_app.register_meter(runtime, "demo", "PW-1", MeterDetails(Utility.WATER, "pulse-water-10l",
                                                                           "1", Unit.M3))
    body = {"readings": [{"meter_id": "PW-1", "utility": "water", "measured_at": "2026-11-21T08:00:00Z",
                          "pulse_count": 123456},
                         {"meter_id": "NOT-REGISTERED", "utility": "water", "measured_at": "2026-11-21T08:00:00Z",
                          "pulse_count": 1},
                         {"meter_id": "X", "utility": "water", "measured_at": "2026-11-21T08:00:00Z"}]}
    result = (await http.post("/v1/readings", json=body)).json()
    assert [i["status"] for i in result["items"]] == ["accepted", "rejected", "rejected"]
    assert "registry" in result["items"][1]["reason"]
    assert "registers or pulse_count" in result["items"][2]["reason"]
    [reading] = [e for e in await staged_events(runtime) if e.event_type == "ReadingReceived"]
    assert reading.payload.registers[0].value == Decimal("1234.56")
