"""E-bills and reports through billing's API on SQLite and PostgreSQL: a unified account's June and July
(tiered water, flat electricity with cumulative rounding, daily fees, a property fee, a signed callback
payment, a subsidy), as HTML in Chinese and English and as PDF, reconciling with the balance and the
settlements; daily collections, arrears and consumption as CSV and xlsx."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import openpyxl
import pytest

pytestmark = pytest.mark.integration


def local(month: int, day: int, hour: int, zone: Any) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=zone)


async def june_and_july(billing_api: Any) -> None:
    """Account H: 200.00 paid in June; in July 12 m³ of water across two tiers, 3 kWh, a 100.00 callback
    payment, a 10.00 subsidy, the property fee and 14 daily meter fees. Merchant D: 1 m³, never paid."""
    zone = billing_api.ZONE
    billing_api.at(local(6, 28, 10, zone))
    await billing_api.household("H")
    assert (await billing_api.pay("H", "200.00", "WX-JUNE")).status_code == 201
    billing_api.at(local(7, 2, 8, zone))
    await billing_api.settle("H", date(2026, 7, 1))  # June 29 and 30: 0.50 each; July 1: 0.50 and 30.00
    await billing_api.rate("H", "WM-H", "water", 24, "8.00")  # tier 1: 40.00
    billing_api.at(local(7, 3, 8, zone))
    await billing_api.rate("H", "WM-H", "water", 24, "4.00")  # 2 @ 5.00 + 2 @ 7.00 = 24.00
    for hour in (8, 9, 10):  # billing.md R2: 0.49, 0.49, 0.48
        billing_api.at(local(7, 3, hour, zone))
        await billing_api.rate("H", "EM-H", "power", 1, "1.00")
    billing_api.at(local(7, 5, 12, zone))
    body = json.dumps({"account_id": "H", "provider_transaction_id": "WX-JULY", "amount": "100.00",
                       "currency": "CNY", "paid_at": "2026-07-05T11:58:00+08:00"}).encode()
    assert (await billing_api.callback("wechat_pay", body)).status_code == 201
    billing_api.at(local(7, 6, 9, zone))
    subsidy = await billing_api.post("/v1/subsidies/batch", json={"batch_id": "AID-7", "lines": [
        {"account_id": "H", "amount": "10.00", "reason": "Summer water subsidy"}]})
    assert subsidy.json()["accepted"] == 1
    billing_api.at(local(7, 10, 12, zone))
    await billing_api.household("D", kind="merchant")
    await billing_api.rate("D", "WM-D", "water", 2, "1.00")  # -5.00: depleted
    billing_api.at(local(7, 15, 10, zone))
    await billing_api.settle("H", date(2026, 7, 14))


async def test_the_july_statement_reconciles_with_the_balance_in_chinese_english_and_pdf(billing_api: Any) -> None:
    await june_and_july(billing_api)
    assert await billing_api.balance("H") == Decimal("206.54")  # 199.00 + 100 + 10 - 30 - 72.46

    chinese = await billing_api.get("/v1/accounts/H/statements/2026-07")
    assert chinese.status_code == 200, chinese.text
    assert chinese.headers["content-type"].startswith("text/html") and chinese.headers["content-language"] == "zh-CN"
    page = chinese.text
    for expected in ("月度账单", "2026年7月", "Riverside Water &amp; Power", "199.00 CNY", "206.54 CNY",
                     "第1阶梯", "第2阶梯", "标准单价", "每日表计服务费", "72.46 CNY", "Summer water subsidy",
                     "-30.00 CNY", 'data-day="2026-07-03"'):
        assert expected in page, expected
    for line in ("50.00 CNY", "14.00 CNY", "7.00 CNY", "1.46 CNY"):  # the charge lines, exactly as posted
        assert line in page, line

    english = await billing_api.get("/v1/accounts/H/statements/2026-07", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert "Monthly statement July 2026" in english.text and "Tier 2" in english.text
    assert "Property fee (2026-07)" in english.text and "206.54 CNY" in english.text
    forced = await billing_api.get("/v1/accounts/H/statements/2026-07", params={"lang": "en"},
                                   headers={"Accept-Language": "zh-CN"})
    assert "Monthly statement" in forced.text

    by_suffix = await billing_api.get("/v1/accounts/H/statements/2026-07.pdf")
    by_accept = await billing_api.get("/v1/accounts/H/statements/2026-07",
                                      headers={"Accept": "application/pdf, text/html;q=0.5"})
    for pdf in (by_suffix, by_accept):
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF") and len(pdf.content) > 2000
    assert 'filename="statement-H-2026-07.pdf"' in by_suffix.headers["content-disposition"]


async def test_a_settled_months_statement_closes_where_its_last_settlement_does(billing_api: Any) -> None:
    await june_and_july(billing_api)
    june = (await billing_api.get("/v1/accounts/H/statements/2026-06.html", params={"lang": "en"})).text
    settled = (await billing_api.get("/v1/accounts/H/settlements", params={"from": "2026-06-28",
                                                                          "to": "2026-06-30"})).json()
    assert [s["settlement_date"] for s in settled] == ["2026-06-28", "2026-06-29", "2026-06-30"]
    assert Decimal(settled[-1]["closing_balance"]) == Decimal("199.00")
    assert "199.00 CNY" in june and "200.00 CNY" in june and "WX-JUNE" in june
    july = (await billing_api.get("/v1/accounts/H/statements/2026-07", params={"lang": "en"})).text
    assert "Opening balance</td><td class=\"num\">199.00 CNY" in july


async def test_statements_that_cannot_be_given_are_refused_with_the_reason(billing_api: Any) -> None:
    await billing_api.open_account("E")
    assert (await billing_api.get("/v1/accounts/E/statements/2026-08")).status_code == 404
    assert (await billing_api.get("/v1/accounts/E/statements/2026-13")).status_code == 422
    assert (await billing_api.get("/v1/accounts/E/statements/July")).status_code == 422
    assert (await billing_api.get("/v1/accounts/NOPE/statements/2026-07")).status_code == 404
    json_only = await billing_api.get("/v1/accounts/E/statements/2026-07", headers={"Accept": "application/json"})
    assert json_only.status_code == 406
    assert (await billing_api.get("/v1/accounts/E/statements/2026-07", params={"lang": "fr"})).status_code == 422
    empty = await billing_api.get("/v1/accounts/E/statements/2026-07", headers={"Accept": "*/*"})
    assert empty.status_code == 200 and "0.00 CNY" in empty.text


def csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


async def test_daily_collections_arrears_and_consumption_as_csv_and_xlsx(billing_api: Any) -> None:
    await june_and_july(billing_api)
    collections = await billing_api.get("/v1/reports/daily-collections", params={"from": "2026-06-01",
                                                                                 "to": "2026-07-31"})
    assert collections.headers["content-type"].startswith("text/csv")
    assert csv_rows(collections.content) == [["日期", "渠道", "笔数", "金额", "币种"],
                                             ["2026-06-28", "微信支付", "1", "200.00", "CNY"],
                                             ["2026-07-05", "微信支付", "1", "100.00", "CNY"]]

    arrears = await billing_api.get("/v1/reports/arrears", params={"lang": "en"})
    assert csv_rows(arrears.content)[1] == ["D", "C-D", "-5.00", "CNY", "2026-07-10", "5", "", ""]

    consumption = await billing_api.get("/v1/reports/consumption", params={
        "from": "2026-07-01", "to": "2026-07-14", "lang": "en", "format": "xlsx"})
    assert consumption.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = openpyxl.load_workbook(io.BytesIO(consumption.content)).active
    assert [[cell.value for cell in row] for row in sheet.iter_rows(min_row=2)] == [
        ["Electricity", "Household", 3, "kWh", 1.46, "CNY"],
        ["Water", "Household", 12, "m³", 71, "CNY"],  # 40.00 + 24.00 + 14 daily fees of 0.50
        ["Water", "Merchant", 1, "m³", 5, "CNY"],
    ]
    by_account = await billing_api.get("/v1/reports/consumption", params={
        "from": "2026-07-01", "to": "2026-07-14", "group_by": "account", "lang": "en"})
    assert [row[1] for row in csv_rows(by_account.content)[1:]] == ["H", "D", "H"]
    backwards = await billing_api.get("/v1/reports/consumption", params={"from": "2026-07-14", "to": "2026-07-01"})
    assert backwards.status_code == 422
