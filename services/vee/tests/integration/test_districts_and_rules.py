"""District balances and rule versions on SQLite and PostgreSQL: readings go through the real handlers,
the daily job evaluates the district, the API shows the balance and publishes rule versions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import asgi_client
from amiflow_schemas import decode_event, new_envelope
from amiflow_schemas.events.readings import ReadingReceived
from amiflow_schemas.events.registry import MeterDefined, MeterGroups, ReadSchedule, ScheduleKind
from amiflow_schemas.examples import example_payloads
from sqlalchemy import delete, select
from vee.adapters import db
from vee.config import VeeSettings
from vee.districts_app import evaluate_districts
from vee.main import api
from vee.registry_app import registry_handler
from vee.series_app import series_handler

pytestmark = pytest.mark.integration

TENANT = "utility"
START = datetime(2026, 11, 1, 16, tzinfo=UTC)  # 2026-11-02 00:00 in Asia/Shanghai
NOW = START + timedelta(days=2, hours=3)  # 03:00 on 11-04: 11-02 and 11-03 have closed
HOURLY = ReadSchedule(kind=ScheduleKind.HOURLY, at_local=None, jitter_s=0)
HEADERS = {"X-Tenant-Id": TENANT}
CUSTOMERS = ["C-1", "C-2", "C-3", "C-4"]


def zones(_tenant: str) -> str:
    return "Asia/Shanghai"


@pytest.fixture
async def vee(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = api(VeeSettings(database_url=database_url))
    runtime = app.state.runtime
    runtime.clock = FrozenClock(NOW)
    await runtime.migrate()
    async with asgi_client(app, "http://vee") as http:
        yield http, runtime
    await runtime.engine.dispose()


def _envelope(payload: Any, key: str, at: datetime) -> Any:
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=TENANT, key=key, occurred_at=at, recorded_at=at,
                        producer="test")


async def feed_district(runtime: Any, inflow_per_hour: Decimal, customer_per_hour: Decimal, hours: int) -> None:
    """An inflow meter and four customer meters in DMA-7, read hourly from START."""
    defined: MeterDefined = example_payloads()["MeterDefined"]
    register, handle = registry_handler(runtime.clock, zones), series_handler(runtime.clock, zones)
    rates = {"INFLOW-7": inflow_per_hour, **dict.fromkeys(CUSTOMERS, customer_per_hour)}
    for meter_id in rates:
        meter = defined.meter.model_copy(update={
            "meter_id": meter_id, "schedule": HOURLY, "replaces_meter_id": None, "installed_at": None,
            "installation_reading": None, "dial_count": 8,
            "groups": MeterGroups(building=None, customer_type=None, district_metered_area="DMA-7")})
        async with runtime.sessions() as session, session.begin():
            await register(session, _envelope(defined.model_copy(update={
                "meter": meter, "device_key": f"{TENANT}/meter/{meter_id}"}), meter_id, START))
    for hour in range(hours + 1):
        at = START + timedelta(hours=hour)
        for meter_id, rate in rates.items():
            received = ReadingReceived.model_validate({
                "meter_id": meter_id, "utility": "water", "measured_at": at, "source": "dtu", "gateway_id": "D",
                "registers": [{"register": "total", "value": str(1000 + rate * hour), "unit": "m3"}]})
            async with runtime.sessions() as session, session.begin():
                await handle(session, _envelope(received, meter_id, at))


async def district_alarms(runtime: Any) -> list[Any]:
    async with runtime.engine.connect() as conn:
        staged = [decode_event(r.message_value) for r in (await conn.execute(select(db.outbox))).all()]
    return [e for e in staged if e.event_type.startswith("Alarm") and e.payload.subject.value == "district"]


async def test_a_district_losing_40_percent_gets_its_daily_balance_and_one_imbalance_alarm(vee: Any) -> None:
    http, runtime = vee
    await feed_district(runtime, Decimal(10), Decimal("1.5"), 48)
    answer = await http.put("/v1/districts/DMA-7", headers=HEADERS,
                            json={"inflow_meter_ids": ["INFLOW-7"], "population": 40, "updated_by": "analyst"})
    assert answer.status_code == 200, answer.text

    await evaluate_districts(runtime.sessions, runtime.clock, zones, lambda: None, timedelta(hours=2))
    balance = (await http.get("/v1/districts/DMA-7/balance", headers=HEADERS,
                              params={"from": "2026-11-02", "to": "2026-11-03"})).json()
    assert [d["day"] for d in balance] == ["2026-11-02", "2026-11-03"]
    day = balance[0]
    assert Decimal(day["inflow"]) == 240 and Decimal(day["customer_use"]) == 144
    assert Decimal(day["non_revenue"]) == 96 and Decimal(day["non_revenue_share"]) == Decimal("0.4")
    assert Decimal(day["actual_coverage"]) == 1 and day["provisional"] is False and day["customer_meters"] == 4
    assert Decimal(day["minimum_night_flow"]) == 10 and Decimal(day["legitimate_night_use"]) == 6
    alarms = await district_alarms(runtime)
    assert [(a.event_type, a.payload.alarm_type.value) for a in alarms] == [("AlarmRaised", "district_imbalance")]

    await evaluate_districts(runtime.sessions, runtime.clock, zones, lambda: None, timedelta(hours=2))
    assert len(await district_alarms(runtime)) == 1  # a second run looks at no day twice


async def test_a_day_without_the_inflow_is_recorded_without_a_balance_and_raises_nothing(vee: Any) -> None:
    http, runtime = vee
    await feed_district(runtime, Decimal(10), Decimal("1.5"), 12)  # the inflow stops at noon on 11-02
    await http.put("/v1/districts/DMA-7", headers=HEADERS, json={"inflow_meter_ids": ["INFLOW-7"],
                                                                 "updated_by": "analyst"})
    await evaluate_districts(runtime.sessions, runtime.clock, zones, lambda: None, timedelta(hours=2))
    day = (await http.get("/v1/districts/DMA-7/balance", headers=HEADERS,
                          params={"from": "2026-11-02", "to": "2026-11-02"})).json()[0]
    assert day["inflow"] is None and day["provisional"] is True
    assert await district_alarms(runtime) == []


async def test_a_district_needs_inflow_meters_the_registry_knows(vee: Any) -> None:
    http, _ = vee
    answer = await http.put("/v1/districts/DMA-9", headers=HEADERS,
                            json={"inflow_meter_ids": ["NOPE"], "updated_by": "analyst"})
    assert answer.status_code == 422 and "NOPE" in answer.text
    assert (await http.get("/v1/districts/DMA-9/balance", headers=HEADERS)).status_code == 404


async def test_a_district_scoped_rule_version_raises_the_imbalance_limit_from_its_effective_date(vee: Any) -> None:
    http, runtime = vee
    rule = {"rule_id": "dma7-lenient@2026-11", "effective_from": "2026-11-01T00:00:00+08:00",
            "scope": {"district": "DMA-7"}, "parameters": {"nrw_alarm_share": "0.5"}, "published_by": "analyst"}
    assert (await http.post("/v1/rules", headers=HEADERS, json=rule)).status_code == 201
    assert (await http.post("/v1/rules", headers=HEADERS, json=rule)).status_code == 409  # versions are immutable
    typo = {**rule, "rule_id": "typo", "parameters": {"nrw_alarm_shar": "0.5"}}
    refused = await http.post("/v1/rules", headers=HEADERS, json=typo)
    assert refused.status_code == 422 and "nrw_alarm_shar" in refused.text
    out_of_range = {**rule, "rule_id": "bad", "parameters": {"nrw_alarm_share": "1.5"}}
    assert (await http.post("/v1/rules", headers=HEADERS, json=out_of_range)).status_code == 422
    listed = (await http.get("/v1/rules", headers=HEADERS)).json()
    assert [(r["rule_id"], r["parameters"]["nrw_alarm_share"]) for r in listed] == [("dma7-lenient@2026-11", "0.5")]
    assert (await http.get("/v1/rules", headers={"X-Tenant-Id": "other"})).json() == []

    await feed_district(runtime, Decimal(10), Decimal("1.5"), 48)
    await http.put("/v1/districts/DMA-7", headers=HEADERS, json={"inflow_meter_ids": ["INFLOW-7"],
                                                                 "updated_by": "analyst"})
    await evaluate_districts(runtime.sessions, runtime.clock, zones, lambda: None, timedelta(hours=2))
    assert await district_alarms(runtime) == []  # 40 % is under this district's 50 %


async def test_late_data_updates_a_closed_day_without_alarming_it_again(vee: Any) -> None:
    http, runtime = vee
    await feed_district(runtime, Decimal(10), Decimal("1.5"), 48)
    await http.put("/v1/districts/DMA-7", headers=HEADERS, json={"inflow_meter_ids": ["INFLOW-7"],
                                                                 "updated_by": "analyst"})
    await evaluate_districts(runtime.sessions, runtime.clock, zones, lambda: None, timedelta(hours=2))
    async with runtime.sessions() as session, session.begin():
        await session.execute(delete(db.outbox))
    later = FrozenClock(NOW + timedelta(days=1))
    runtime.clock = later
    await evaluate_districts(runtime.sessions, later, zones, lambda: None, timedelta(hours=2))
    days = (await http.get("/v1/districts/DMA-7/balance", headers=HEADERS)).json()
    assert date.fromisoformat(days[-1]["day"]) == date(2026, 11, 4)  # the next closed day is looked at too
    assert [d["day"] for d in days if d["inflow"] is not None] == ["2026-11-02", "2026-11-03"]
    assert await district_alarms(runtime) == []  # a day without inflow data clears nothing
