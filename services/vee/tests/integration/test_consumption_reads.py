"""Consumption for the console through the HTTP app, on both databases: totals per meter over a period (the
map's colour grading) paged by meter id, and curves by hour, day and month of a meter and of a group, with
the gaps and the estimated share visible — read from meters read daily at local midnight in Asia/Shanghai."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from amiflow_runtime.db import alembic_config
from vee.main import MIGRATIONS

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRST = date(2026, 10, 30)  # the first daily read of D1 and D2; their last is on 3 December
DAYS = 35
GAP = (date(2026, 11, 10), date(2026, 11, 11))  # D2 sends nothing these two mornings: its 9th and 10th are estimated


def local(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI).astimezone(UTC)


NOW = local(date(2026, 12, 5), 12)


def d1(k: int) -> Decimal:
    return Decimal("100") + Decimal("1.5") * k


def d2(k: int) -> Decimal:
    return Decimal("200") + sum((Decimal(2 + i % 3) + Decimal("0.125") for i in range(k)), Decimal(0))


def _on(day: date) -> int:
    return (day - FIRST).days


@pytest.fixture
async def fleet(vee_api: Any) -> Any:
    for meter in ("WM-D1", "WM-D2", "WM-D3"):
        await vee_api.define_meter(meter)
    for k in range(DAYS):
        day = FIRST + timedelta(days=k)
        await vee_api.read("WM-D1", local(day), str(d1(k)))
        if day not in GAP:
            await vee_api.read("WM-D2", local(day), str(d2(k)))
    for k, value in enumerate(("10", "11", "12", "13")):  # D3: a few reads in October, none after
        await vee_api.read("WM-D3", local(date(2026, 10, 25) + timedelta(days=k)), value)
    return vee_api


def _period(first: datetime, end: datetime) -> dict[str, str]:
    return {"from": first.isoformat(), "to": end.isoformat()}


async def _curve(http: Any, meter: str, granularity: str, first: datetime, end: datetime) -> list[dict[str, Any]]:
    answer = await http.get(f"/v1/meters/{meter}/consumption", params={**_period(first, end),
                                                                        "granularity": granularity})
    assert answer.status_code == 200, answer.text
    buckets: list[dict[str, Any]] = answer.json()
    return buckets


def _total(buckets: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(b["consumption"]) for b in buckets), Decimal(0))


async def test_totals_over_a_month_are_paged_by_meter_id(fleet: Any) -> None:
    november = _period(local(date(2026, 11, 1)), local(date(2026, 12, 1)))
    first = (await fleet.http.get("/v1/consumption/totals", params={**november, "limit": 2})).json()
    second = (await fleet.http.get("/v1/consumption/totals",
                                   params={**november, "limit": 2, "after": first["next"]})).json()

    assert [i["meter_id"] for i in first["items"]] == ["WM-D1", "WM-D2"] and first["next"] == "WM-D2"
    assert [i["meter_id"] for i in second["items"]] == ["WM-D3"] and second["next"] is None
    totals = {i["meter_id"]: i for i in first["items"] + second["items"]}
    assert Decimal(totals["WM-D1"]["consumption"]) == Decimal("45")  # 30 days of 1.5 m3
    assert Decimal(totals["WM-D2"]["consumption"]) == d2(_on(date(2026, 12, 1))) - d2(_on(date(2026, 11, 1)))
    assert totals["WM-D3"]["consumption"] is None  # no data in November: not the same as no use
    assert totals["WM-D1"]["utility"] == "water" and totals["WM-D1"]["unit"] == "m3"
    assert first["period_start"] == "2026-10-31T16:00:00Z" and first["period_end"] == "2026-11-30T16:00:00Z"


async def test_totals_filter_by_utility_and_refuse_an_empty_period(fleet: Any) -> None:
    november = _period(local(date(2026, 11, 1)), local(date(2026, 12, 1)))
    water = (await fleet.http.get("/v1/consumption/totals", params={**november, "utility": "water"})).json()
    gas = (await fleet.http.get("/v1/consumption/totals", params={**november, "utility": "gas"})).json()
    assert len(water["items"]) == 3 and gas == {**gas, "items": [], "next": None}
    backwards = _period(local(date(2026, 12, 1)), local(date(2026, 11, 1)))
    assert (await fleet.http.get("/v1/consumption/totals", params=backwards)).status_code == 422
    assert (await fleet.http.get("/v1/consumption/totals")).status_code == 422  # from and to are needed
    ancient = await fleet.http.get("/v1/consumption/totals", params={**november, "from": "0001-01-01T00:00:00+08:00"})
    assert ancient.status_code == 422 and ancient.json()["detail"]["problem"] == "period_out_of_range"
    too_many = {**november, "limit": 50_001}
    assert (await fleet.http.get("/v1/consumption/totals", params=too_many)).status_code == 422


async def test_a_total_over_hours_days_and_months_equals_the_sum_of_its_hourly_curve(fleet: Any) -> None:
    first, end = local(date(2026, 11, 5), 12), local(date(2026, 11, 20))  # half a day, then 14 days
    totals = (await fleet.http.get("/v1/consumption/totals", params=_period(first, end))).json()["items"]
    by_meter = {i["meter_id"]: Decimal(i["consumption"]) for i in totals if i["consumption"] is not None}
    assert by_meter["WM-D1"] == Decimal("21.75")
    for meter in ("WM-D1", "WM-D2"):
        assert by_meter[meter] == _total(await _curve(fleet.http, meter, "hour", first, end)), meter
    longer = (await fleet.http.get("/v1/consumption/totals", params=_period(
        local(date(2026, 10, 31), 6), local(date(2026, 12, 2), 18)))).json()["items"]  # hours, days and a month
    curve = await _curve(fleet.http, "WM-D2", "hour", local(date(2026, 10, 31), 6), local(date(2026, 12, 2), 18))
    assert Decimal(next(i for i in longer if i["meter_id"] == "WM-D2")["consumption"]) == _total(curve)


async def test_month_buckets_show_coverage_and_the_estimated_share(fleet: Any) -> None:
    months = await _curve(fleet.http, "WM-D2", "month", local(date(2026, 10, 1)), local(date(2027, 1, 1)))
    assert [b["start"] for b in months] == ["2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z", "2026-11-30T16:00:00Z"]
    october, november, december = months
    assert not october["complete"] and Decimal(october["covered_share"]) == Decimal("0.0645")  # 2 days of 31
    assert november["complete"] and not november["all_actual"]
    assert Decimal(november["covered_share"]) == 1 and Decimal(november["estimated_share"]) == Decimal("0.0667")
    assert Decimal(november["consumption"]) == d2(_on(date(2026, 12, 1))) - d2(_on(date(2026, 11, 1)))
    assert Decimal(december["covered_share"]) == Decimal("0.0645") and Decimal(december["estimated_share"]) == 0
    year_before = await _curve(fleet.http, "WM-D2", "month", local(date(2025, 10, 1)), local(date(2026, 1, 1)))
    assert year_before == []  # year-on-year: the same range a year earlier, here without data


async def test_a_year_of_day_buckets_is_contiguous_with_the_estimated_days_flagged(fleet: Any) -> None:
    days = await _curve(fleet.http, "WM-D2", "day", local(date(2026, 1, 1)), local(date(2027, 1, 1)))
    assert len(days) == DAYS - 1  # 35 reads close 34 days
    assert all(a["end"] == b["start"] for a, b in pairwise(days))
    estimated = [b["start"] for b in days if Decimal(b["estimated_share"]) > 0]
    assert estimated == ["2026-11-08T16:00:00Z", "2026-11-09T16:00:00Z"]  # the 9th and 10th, local
    assert all(b["complete"] and Decimal(b["covered_share"]) == 1 for b in days)


async def test_a_group_curve_sums_its_meters_and_says_how_much_was_estimated(fleet: Any) -> None:
    answer = await fleet.http.get("/v1/groups/building/B3/consumption", params={
        **_period(local(date(2026, 11, 9)), local(date(2026, 11, 16))), "granularity": "day"})
    assert answer.status_code == 200, answer.text
    by_day = {b["start"]: b for b in answer.json()}
    gap_day, plain_day = by_day["2026-11-08T16:00:00Z"], by_day["2026-11-14T16:00:00Z"]
    assert (gap_day["meters"], gap_day["actual_meters"], gap_day["complete_meters"]) == (2, 1, 2)
    assert not gap_day["all_actual"] and gap_day["complete"] and Decimal(gap_day["estimated_share"]) == Decimal("0.5")
    assert plain_day["all_actual"] and Decimal(plain_day["estimated_share"]) == 0
    k = _on(date(2026, 11, 16))  # the read that closes the 15th
    assert Decimal(plain_day["consumption"]) == (d1(k) - d1(k - 1)) + (d2(k) - d2(k - 1))


async def test_a_database_from_before_the_console_reads_is_migrated_with_what_can_be_known(
        fleet: Any, database_url: str) -> None:
    november = _period(local(date(2026, 11, 1)), local(date(2026, 12, 1)))
    config = alembic_config(MIGRATIONS, database_url)
    await asyncio.to_thread(command.downgrade, config, "0006")  # the registry copy without utility and unit
    await asyncio.to_thread(command.upgrade, config, "head")
    await fleet.runtime.engine.dispose()  # no connection keeps statements prepared against the old tables

    water = (await fleet.http.get("/v1/consumption/totals", params={**november, "utility": "water"})).json()
    assert [(i["meter_id"], i["unit"]) for i in water["items"]] == [("WM-D1", "m3"), ("WM-D2", "m3"), ("WM-D3", "m3")]
    months = await _curve(fleet.http, "WM-D2", "month", local(date(2026, 11, 1)), local(date(2026, 12, 1)))
    # Buckets written before their seconds were kept: complete says all is covered; the estimated share is unknown.
    assert months[0]["covered_share"] == "1" and months[0]["estimated_share"] is None
    day = await _curve(fleet.http, "WM-D1", "day", local(date(2026, 11, 15)), local(date(2026, 11, 16)))
    assert day[0]["all_actual"] and day[0]["estimated_share"] == "0"


async def test_a_group_of_water_and_electricity_meters_is_summed_per_utility_never_across_units(fleet: Any) -> None:
    from amiflow_schemas.events.registry import MeterDefined
    from amiflow_schemas.examples import example_payloads
    from amiflow_schemas.primitives import Unit, Utility

    from .conftest import TENANT, _envelope, registry_handler, zones

    defined: MeterDefined = example_payloads()["MeterDefined"]
    meter = defined.meter.model_copy(update={"meter_id": "EM-D9", "utility": Utility.ELECTRICITY, "unit": Unit.KWH,
                                             "replaces_meter_id": None, "installed_at": None,
                                             "installation_reading": None})
    event = defined.model_copy(update={"meter": meter, "device_key": f"{TENANT}/meter/EM-D9"})
    async with fleet.runtime.sessions() as session, session.begin():
        await registry_handler(fleet.clock, zones)(session, _envelope(event, "EM-D9", fleet.clock.now()))
    period = {**_period(local(date(2026, 11, 9)), local(date(2026, 11, 16))), "granularity": "day"}
    mixed = await fleet.http.get("/v1/groups/building/B3/consumption", params=period)
    assert mixed.status_code == 422
    assert mixed.json()["detail"]["problem"] == "mixed_units" and "electricity in kWh" in mixed.text
    water = await fleet.http.get("/v1/groups/building/B3/consumption", params={**period, "utility": "water"})
    assert water.status_code == 200, water.text
    k = _on(date(2026, 11, 16))
    plain_day = {b["start"]: b for b in water.json()}["2026-11-14T16:00:00Z"]
    assert (plain_day["unit"], Decimal(plain_day["consumption"])) == ("m3", (d1(k) - d1(k - 1)) + (d2(k) - d2(k - 1)))
