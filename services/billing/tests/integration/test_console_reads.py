"""What the console and the portal read of billing, on SQLite and PostgreSQL: the account list (search, filters,
paging), the overview's sums against hand-computed Decimals, and an account's usage curve by local day and month."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from amiflow_runtime.db import alembic_config
from amiflow_runtime.testing import auth_headers
from billing.main import MIGRATIONS

pytestmark = pytest.mark.integration

TENANT = "riverside"


def _local(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}+08:00")


async def _accounts(billing_api: Any, **params: Any) -> dict[str, Any]:
    answer = await billing_api.get("/v1/accounts", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_the_account_list_searches_filters_and_pages_in_account_id_order(billing_api: Any) -> None:
    for n in range(1, 6):
        await billing_api.open_account(f"A-{n:02d}", low_balance_amount="20.00")
    await billing_api.household("B-METERED")
    await billing_api.pay("A-02", "5.00", "T-LOW")  # below 20.00: low
    closed = await billing_api.post("/v1/accounts/A-05/move-out")
    assert closed.status_code == 200, closed.text

    everything = await _accounts(billing_api)
    assert [item["account_id"] for item in everything["items"]] == ["A-01", "A-02", "A-03", "A-04", "A-05",
                                                                    "B-METERED"]
    assert everything["next"] is None
    low = everything["items"][1]
    assert (low["customer_id"], low["customer_kind"], low["status"], low["balance"], low["currency"],
            low["balance_state"], low["meters"]) == ("C-A-02", "household", "open", "5.00", "CNY", "low", [])
    assert everything["items"][4]["status"] == "closed"
    assert everything["items"][5]["meters"] == [
        {"meter_id": "WM-B-METERED", "utility": "water", "tariff_id": "water"},
        {"meter_id": "EM-B-METERED", "utility": "electricity", "tariff_id": "power"}]

    pages, after = [], None
    while True:
        page = await _accounts(billing_api, limit=2, **({"after": after} if after else {}))
        pages.append([item["account_id"] for item in page["items"]])
        after = page["next"]
        if after is None:
            break
    assert pages == [["A-01", "A-02"], ["A-03", "A-04"], ["A-05", "B-METERED"]]

    assert [i["account_id"] for i in (await _accounts(billing_api, q="b-"))["items"]] == ["B-METERED"]
    by_customer = await _accounts(billing_api, q="C-A-0")
    assert [i["account_id"] for i in by_customer["items"]] == ["A-01", "A-02", "A-03", "A-04", "A-05"]
    assert (await _accounts(billing_api, q="%"))["items"] == []  # a wildcard is a character like any other
    assert [i["account_id"] for i in (await _accounts(billing_api, balance_state="low"))["items"]] == ["A-02"]
    paying = await _accounts(billing_api, meter_id="EM-B-METERED")
    assert [i["account_id"] for i in paying["items"]] == ["B-METERED"]
    assert (await _accounts(billing_api, meter_id="NO-SUCH-METER"))["items"] == []
    unlinked = await billing_api.delete("/v1/accounts/B-METERED/meters/EM-B-METERED")
    assert unlinked.status_code == 200, unlinked.text
    assert (await _accounts(billing_api, meter_id="EM-B-METERED"))["items"] == []

    assert (await billing_api.get("/v1/accounts", params={"limit": 501})).status_code == 422
    assert (await billing_api.get("/v1/accounts", params={"balance_state": "broke"})).status_code == 422
    other_tenant = await billing_api.get("/v1/accounts", headers={"X-Tenant-Id": "hillside"})
    assert other_tenant.json() == {"items": [], "next": None}
    customer = auth_headers(TENANT, roles=("customer",), account_id="A-01")
    assert (await billing_api.get("/v1/accounts", headers=customer)).status_code == 403


async def test_the_directory_of_accounts_opened_before_it_existed_is_filled_by_its_migration(
        billing_api: Any, database_url: str) -> None:
    await billing_api.household("ACC-1")
    await billing_api.open_account("ACC-2", kind="merchant")
    assert (await billing_api.post("/v1/accounts/ACC-2/move-out")).status_code == 200
    live = await _accounts(billing_api)
    config = alembic_config(MIGRATIONS, database_url)
    await asyncio.to_thread(command.downgrade, config, "0003")  # as a database from before the directory
    await asyncio.to_thread(command.upgrade, config, "head")
    await billing_api.runtime.engine.dispose()  # no connection keeps statements prepared against the old tables
    assert await _accounts(billing_api) == live
    assert [(i["account_id"], i["customer_kind"], i["status"]) for i in live["items"]] == [
        ("ACC-1", "household", "open"), ("ACC-2", "merchant", "closed")]


async def test_the_summary_sums_balances_arrears_and_collections_by_local_day(billing_api: Any) -> None:
    billing_api.at(_local("2026-06-30T23:00:00"))
    await billing_api.open_account("ACC-1")
    billing_api.at(_local("2026-06-30T23:30:00"))
    await billing_api.pay("ACC-1", "20.00", "T-JUNE")  # June: counted in neither July figure
    billing_api.at(_local("2026-07-01T00:30:00"))  # still 30 June in UTC
    await billing_api.pay("ACC-1", "30.00", "T-JULY-1")
    billing_api.at(_local("2026-07-14T10:00:00"))
    await billing_api.pay("ACC-1", "50.00", "T-JULY-14")
    billing_api.at(_local("2026-07-15T09:00:00"))
    await billing_api.pay("ACC-1", "100.00", "T-JULY-15")
    await billing_api.open_account("ACC-L", low_balance_amount="20.00")
    await billing_api.pay("ACC-L", "5.00", "T-L")
    await billing_api.household("ACC-D")
    await billing_api.pay("ACC-D", "0.30", "T-D")
    await billing_api.rate("ACC-D", "WM-ACC-D", "water", 2, "0.16")  # 0.80 charged: -0.50, depleted
    await billing_api.open_account("ACC-Z")
    await billing_api.open_account("ACC-GONE")
    assert (await billing_api.post("/v1/accounts/ACC-GONE/move-out")).status_code == 200
    hillside = {"X-Tenant-Id": "hillside"}
    await billing_api.post("/v1/accounts", headers=hillside, json={
        "account_id": "ACC-1", "customer_id": "C-H", "customer_kind": "household"})
    await billing_api.post("/v1/payments", headers=hillside, json={
        "account_id": "ACC-1", "channel": "cash", "provider_transaction_id": "H-1", "amount": "999.00",
        "currency": "CNY"})

    today = (await billing_api.get("/v1/summary")).json()
    assert today == {
        "day": "2026-07-15", "currency": "CNY",
        "accounts": {"total": 4, "normal": 2, "low": 1, "depleted": 1},
        "balance_total": str(Decimal("200.00") + Decimal("5.00") + Decimal("-0.50")),
        "arrears": {"accounts": 1, "amount": "0.50"},
        "collections": {"day": str(Decimal("100.00") + Decimal("5.00") + Decimal("0.30")),
                        "month": str(Decimal("30.00") + Decimal("50.00") + Decimal("105.30")),
                        "payments_day": 3},
    }
    june = (await billing_api.get("/v1/summary", params={"day": "2026-06-30"})).json()
    assert june["collections"] == {"day": "20.00", "month": "20.00", "payments_day": 1}
    assert june["balance_total"] == today["balance_total"]  # balances as they stand now
    first_of_july = (await billing_api.get("/v1/summary", params={"day": "2026-07-01"})).json()
    assert first_of_july["collections"] == {"day": "30.00", "month": "30.00", "payments_day": 1}
    assert (await billing_api.get("/v1/summary", params={"day": "15.07.2026"})).status_code == 422


async def _usage(billing_api: Any, account_id: str, **params: Any) -> Any:
    return await billing_api.get(f"/v1/accounts/{account_id}/usage", params=params)


def _points(body: dict[str, Any]) -> dict[str, list[tuple[str, Decimal, Decimal]]]:
    return {s["meter_id"]: [(p["start"], Decimal(p["consumption"]), Decimal(p["amount"])) for p in s["points"]]
            for s in body["series"]}


async def test_usage_is_bucketed_by_local_day_and_month_across_a_local_midnight(billing_api: Any) -> None:
    billing_api.at(_local("2026-07-14T20:00:00"))
    await billing_api.household("ACC-U")
    billing_api.at(_local("2026-07-14T23:00:00"))
    await billing_api.rate("ACC-U", "WM-ACC-U", "water", 1, "2.0")  # 22:00-23:00 on the 14th: 10.00
    billing_api.at(_local("2026-07-15T00:00:00"))
    await billing_api.rate("ACC-U", "WM-ACC-U", "water", 1, "1.0")  # ends at midnight: still the 14th, 5.00
    billing_api.at(_local("2026-07-15T01:00:00"))  # 17:00 UTC on the 14th: the 15th in Shanghai
    await billing_api.rate("ACC-U", "WM-ACC-U", "water", 1, "3.0")  # 15.00
    await billing_api.rate("ACC-U", "EM-ACC-U", "power", 1, "10")  # 10 x 0.4883 = 4.883: 4.88
    billing_api.at(_local("2026-07-16T02:00:00"))
    await billing_api.settle("ACC-U", _local("2026-07-15T00:00:00").date())  # daily fees: not usage

    daily = await _usage(billing_api, "ACC-U", **{"from": "2026-07-14", "to": "2026-07-15"})
    assert daily.status_code == 200, daily.text
    body = daily.json()
    assert (body["account_id"], body["granularity"], body["time_zone"], body["currency"]) == (
        "ACC-U", "day", "Asia/Shanghai", "CNY")
    assert [(s["meter_id"], s["utility"], s["unit"]) for s in body["series"]] == [
        ("EM-ACC-U", "electricity", "kWh"), ("WM-ACC-U", "water", "m3")]
    assert _points(body) == {
        "EM-ACC-U": [("2026-07-15T00:00:00+08:00", Decimal("10"), Decimal("4.88"))],
        "WM-ACC-U": [("2026-07-14T00:00:00+08:00", Decimal("3.0"), Decimal("15.00")),
                     ("2026-07-15T00:00:00+08:00", Decimal("3.0"), Decimal("15.00"))]}
    assert body["series"][1]["points"][0]["amount"] == "15.00"

    one_day = (await _usage(billing_api, "ACC-U", **{"from": "2026-07-15", "to": "2026-07-15"})).json()
    assert _points(one_day)["WM-ACC-U"] == [("2026-07-15T00:00:00+08:00", Decimal("3.0"), Decimal("15.00"))]
    monthly = (await _usage(billing_api, "ACC-U", granularity="month", **{"from": "2026-07-01",
                                                                          "to": "2026-07-31"})).json()
    assert _points(monthly)["WM-ACC-U"] == [("2026-07-01T00:00:00+08:00", Decimal("6.0"), Decimal("30.00"))]
    by_default = (await _usage(billing_api, "ACC-U")).json()  # the last 30 days up to today, the 16th
    assert _points(by_default) == _points(body)

    customer = auth_headers(TENANT, roles=("customer",), account_id="ACC-U")
    assert (await billing_api.get("/v1/accounts/ACC-U/usage", headers=customer)).status_code == 200
    assert (await billing_api.get("/v1/accounts/ACC-OTHER/usage", headers=customer)).status_code == 404
    assert (await _usage(billing_api, "NOBODY")).status_code == 404


@pytest.mark.parametrize(("params", "problem"), [
    ({"from": "2025-06-12", "to": "2026-07-16"}, None),  # 400 days
    ({"from": "2025-06-11", "to": "2026-07-16"}, "invalid_range"),
    ({"from": "2026-07-16", "to": "2026-07-15"}, "invalid_range"),
    ({"granularity": "month", "from": "2023-08-01", "to": "2026-07-31"}, None),  # 36 months
    ({"granularity": "month", "from": "2023-07-31", "to": "2026-07-01"}, "invalid_range"),
    ({"granularity": "week"}, "request_validation"),
])
async def test_a_usage_range_too_long_or_out_of_order_is_refused_with_the_reason(
        billing_api: Any, params: dict[str, str], problem: str | None) -> None:
    await billing_api.open_account("ACC-R")
    answer = await _usage(billing_api, "ACC-R", **params)
    if problem is None:
        assert answer.status_code == 200, answer.text
    elif problem == "invalid_range":
        assert answer.status_code == 422 and answer.json()["detail"]["problem"] == problem, answer.text
        assert "at most" in answer.json()["detail"]["reason"] or "after" in answer.json()["detail"]["reason"]
    else:
        assert answer.status_code == 422
