"""Accounts and tariffs through billing's API on SQLite and PostgreSQL: open, settings, meter links, tariff
versions, room change and move-out, with the events they stage for Kafka."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from billing.adapters import rating_db

pytestmark = pytest.mark.integration


async def test_an_opened_account_takes_the_tenants_currency_zone_and_default_settings(billing_api: Any) -> None:
    opened = await billing_api.open_account("ACC-1", credit_limit="10.00")
    assert (opened["currency"], opened["time_zone"], opened["status"]) == ("CNY", "Asia/Shanghai", "open")
    assert opened["billing_year_start"] == "2026-07-15"  # the local opening day
    assert Decimal(opened["settings"]["credit_limit"]) == 10 and opened["settings"]["low_balance_days"] == 0
    again = await billing_api.post("/v1/accounts", json={"account_id": "ACC-1", "customer_id": "C-2",
                                                         "customer_kind": "merchant"})
    assert again.status_code == 409 and again.json()["detail"]["problem"] == "account_exists"
    shown = (await billing_api.get("/v1/accounts/ACC-1")).json()
    assert shown["customer_id"] == "C-ACC-1" and shown["meters"] == []
    assert (await billing_api.get("/v1/accounts/NOPE")).status_code == 404
    other_tenant = await billing_api.http.get("/v1/accounts/ACC-1", headers={"X-Tenant-Id": "other"})
    assert other_tenant.status_code == 404
    balance = (await billing_api.get("/v1/accounts/ACC-1/balance")).json()
    assert (balance["balance"], balance["status"], balance["currency"], balance["settled_through"]) == (
        "0.00", "normal", "CNY", None)


async def test_settings_the_account_cannot_hold_are_refused_with_the_reason(billing_api: Any) -> None:
    refused = await billing_api.post("/v1/accounts", json={
        "account_id": "ACC-2", "customer_id": "C-2", "customer_kind": "household",
        "settings": {"credit_limit": "5.00", "restore_threshold": "-10.00"}})
    assert refused.status_code == 422 and "restore_threshold must be at least -credit_limit" in refused.text
    assert (await billing_api.get("/v1/accounts/ACC-2")).status_code == 404


async def test_a_tariff_version_is_checked_and_never_changes_once_published(billing_api: Any) -> None:
    water = billing_api.WATER_TARIFF
    assert (await billing_api.publish(water)).status_code == 201
    assert (await billing_api.publish(water)).status_code == 409
    both = {**water, "version_id": "both", "register_prices": [{"register": "T1", "unit_price": "1.00"}]}
    refused = await billing_api.publish(both)
    assert refused.status_code == 422 and "by tiers or by time-of-use registers" in refused.text
    dollars = await billing_api.publish({**water, "tariff_id": "usd", "currency": "USD"})
    assert dollars.status_code == 422 and dollars.json()["detail"]["problem"] == "wrong_currency"
    retroactive = await billing_api.publish({**water, "version_id": "water-2026b",
                                             "effective_from": "2026-07-01T00:00:00+08:00"})
    assert retroactive.status_code == 422 and retroactive.json()["detail"]["problem"] == "retroactive_version"
    raised = {**water, "version_id": "water-2026-08", "effective_from": "2026-08-01T00:00:00+08:00",
              "tiers": [{"up_to": "10", "unit_price": "5.50"}, {"up_to": None, "unit_price": "8.00"}]}
    assert (await billing_api.publish(raised)).status_code == 201
    shown = (await billing_api.get("/v1/tariffs/water")).json()
    assert [v["version_id"] for v in shown["versions"]] == ["water-2026", "water-2026-08"]
    assert [t["tariff_id"] for t in (await billing_api.get("/v1/tariffs")).json()] == ["water"]
    assert (await billing_api.get("/v1/tariffs/usd")).status_code == 404
    assert [e.payload.version_id for e in await billing_api.staged("TariffPublished")] == ["water-2026",
                                                                                          "water-2026-08"]


async def test_a_meter_is_paid_for_by_one_account_at_a_tariff_of_its_service(billing_api: Any) -> None:
    await billing_api.publish(billing_api.WATER_TARIFF)
    for account_id in ("A", "B"):
        await billing_api.open_account(account_id)
    unknown = await billing_api.link("A", "WM-1", "water", "gas-2026")
    assert unknown.status_code == 422 and unknown.json()["detail"]["problem"] == "unknown_tariff"
    wrong = await billing_api.link("A", "EM-1", "electricity", "water")
    assert wrong.status_code == 422 and wrong.json()["detail"]["problem"] == "tariff_mismatch"
    linked = await billing_api.link("A", "WM-1", "water", "water")
    assert linked.status_code == 201
    assert [(m["meter_id"], m["tariff_id"], m["active"]) for m in linked.json()["meters"]] == [
        ("WM-1", "water", True)]
    taken = await billing_api.link("B", "WM-1", "water", "water")
    assert taken.status_code == 409 and "account A pays for meter WM-1" in taken.json()["detail"]["reason"]

    billing_api.at(billing_api.now + timedelta(hours=1))
    unlinked = await billing_api.delete("/v1/accounts/A/meters/WM-1")
    assert unlinked.status_code == 200 and unlinked.json()["meters"][0]["active"] is False
    assert (await billing_api.delete("/v1/accounts/A/meters/WM-1")).status_code == 409
    assert (await billing_api.link("B", "WM-1", "water", "water")).status_code == 201
    await billing_api.open_account("C")
    backdated = await billing_api.post("/v1/accounts/C/meters", json={
        "meter_id": "WM-1", "utility": "water", "tariff_id": "water", "from": "2026-07-15T10:30:00+08:00"})
    assert backdated.status_code == 409  # a link from 10:30 on would overlap A's (to 11:00) and B's (from 11:00)
    assert backdated.json()["detail"]["problem"] == "meter_linked_elsewhere"
    assert [e.event_type for e in await billing_api.staged("MeterLinkedToAccount", "MeterUnlinkedFromAccount")] == [
        "MeterLinkedToAccount", "MeterUnlinkedFromAccount", "MeterLinkedToAccount"]


async def test_raising_the_low_amount_above_the_balance_announces_a_low_balance(billing_api: Any) -> None:
    await billing_api.open_account("ACC-LOW", low_balance_amount="20.00")
    await billing_api.pay("ACC-LOW", "50.00", "T-1")
    assert await billing_api.staged("BalanceLow") == []
    changed = await billing_api.put("/v1/accounts/ACC-LOW/settings", json={
        "low_balance_amount": "80.00", "changed_by": "operator-7",
        "exemptions": [{"starts_at": "2026-07-15T00:00:00+08:00", "ends_at": "2026-07-20T00:00:00+08:00",
                        "reason": "hospital stay"}]})
    assert changed.status_code == 200, changed.text
    assert Decimal(changed.json()["settings"]["low_balance_amount"]) == 80
    [low] = [e.payload for e in await billing_api.staged("BalanceLow")]
    assert (low.balance, low.threshold) == (Decimal("50.00"), Decimal("80.00"))
    assert (await billing_api.get("/v1/accounts/ACC-LOW/balance")).json()["status"] == "low"
    missing = await billing_api.put("/v1/accounts/ACC-LOW/settings", json={"low_balance_amount": "1"})
    assert missing.status_code == 422 and "changed_by" in missing.text


async def test_a_room_change_moves_the_meters_and_the_whole_balance_with_an_audit_trail(billing_api: Any) -> None:
    await billing_api.household("OLD")
    await billing_api.open_account("NEW")
    await billing_api.pay("OLD", "30.00", "T-OLD")
    billing_api.at(billing_api.now + timedelta(hours=2))
    moved = await billing_api.post("/v1/accounts/OLD/room-change",
                                   json={"target_account_id": "NEW", "meter_ids": ["WM-OLD", "EM-OLD"]})
    assert moved.status_code == 200, moved.text
    assert [m["active"] for m in moved.json()["source"]["meters"]] == [False, False]
    assert sorted(m["meter_id"] for m in moved.json()["target"]["meters"]) == ["EM-OLD", "WM-OLD"]
    assert (await billing_api.balance("OLD"), await billing_api.balance("NEW")) == (Decimal(0), Decimal("30.00"))
    transfers = [e.payload for e in await billing_api.staged("AdjustmentPosted")]
    assert [(t.account_id, t.amount, t.counterpart_account_id) for t in transfers] == [
        ("OLD", Decimal("30.00"), "NEW"), ("NEW", Decimal("-30.00"), "OLD")]
    links = [e.payload for e in await billing_api.staged("MeterLinkedToAccount") if e.payload.account_id == "NEW"]
    assert {link.previous_account_id for link in links} == {"OLD"}
    again = await billing_api.post("/v1/accounts/OLD/room-change",
                                   json={"target_account_id": "NEW", "meter_ids": ["WM-OLD"]})
    assert again.status_code == 409


async def test_moving_out_refunds_the_balance_after_the_days_fees_and_closes_the_account(billing_api: Any) -> None:
    billing_api.at(datetime(2026, 7, 13, 9, tzinfo=billing_api.ZONE))
    await billing_api.household("MOVER")
    await billing_api.pay("MOVER", "50.00", "T-MOVE")
    billing_api.at(datetime(2026, 7, 15, 10, tzinfo=billing_api.ZONE))
    unsettled = await billing_api.post("/v1/accounts/MOVER/move-out")
    assert unsettled.status_code == 409 and unsettled.json()["detail"]["problem"] == "days_unsettled"
    assert "2026-07-13 to 2026-07-14" in unsettled.json()["detail"]["reason"]

    await billing_api.settle("MOVER", date(2026, 7, 14))  # 07-14 took the water meter's 0.50 fee
    await billing_api.rate("MOVER", "WM-MOVER", "water", 3, "2.00")  # the final reading: 10.00
    moved = await billing_api.post("/v1/accounts/MOVER/move-out")
    assert moved.status_code == 200, moved.text
    answer = moved.json()
    assert (answer["refunded"], answer["final_balance"]) == ("39.00", "0.00")  # 50 - 0.50 - 10.00 - 0.50 today
    assert answer["account"]["status"] == "closed" and not any(m["active"] for m in answer["account"]["meters"])
    assert answer["settlement"]["settlement_date"] == "2026-07-15"
    assert Decimal(answer["settlement"]["closing_balance"]) == 0
    assert await billing_api.balance("MOVER") == 0
    [refund] = [e.payload for e in await billing_api.staged("RefundIssued")]
    assert refund.amount == Decimal("39.00") and refund.reason.value == "move_out"
    settled = (await billing_api.get("/v1/accounts/MOVER/settlements", params={"from": "2026-07-14"})).json()
    assert [s["settlement_date"] for s in settled] == ["2026-07-14", "2026-07-15"]
    assert (await billing_api.post("/v1/accounts/MOVER/move-out")).status_code == 409
    refused = await billing_api.pay("MOVER", "5.00", "T-LATE")
    assert refused.status_code == 409 and refused.json()["detail"]["problem"] == "account_closed"


async def test_the_ledger_lists_entries_with_their_effect_and_readings_nobody_pays_for_are_shown(
        billing_api: Any) -> None:
    await billing_api.household("L")
    await billing_api.pay("L", "20.00", "T-L")
    billing_api.at(billing_api.now + timedelta(minutes=1))
    await billing_api.rate("L", "EM-L", "power", 1, "1.00")
    entries = (await billing_api.get("/v1/accounts/L/ledger")).json()
    assert [(e["event_type"], e["amount"], e["effect"]) for e in entries] == [
        ("PaymentReceived", "20.00", "20.00"), ("ChargeApplied", "0.49", "-0.49")]
    assert {e["business_day"] for e in entries} == {"2026-07-15"}
    later = (await billing_api.get("/v1/accounts/L/ledger", params={"from": "2026-07-16T00:00:00+08:00"})).json()
    assert later == []
    async with billing_api.runtime.sessions() as session, session.begin():
        await rating_db.hold(session, billing_api.TENANT, "0b6d1f7e-3c1a-4c55-9f43-2a6c1d1b7e01", "WM-ORPHAN",
                             billing_api.now - timedelta(hours=1), "no account pays for meter WM-ORPHAN", "{}",
                             billing_api.now)
    held = (await billing_api.get("/v1/unbilled-readings")).json()
    assert [(r["meter_id"], r["reason"]) for r in held] == [("WM-ORPHAN", "no account pays for meter WM-ORPHAN")]
    assert (await billing_api.get("/v1/unbilled-readings", params={"meter_id": "WM-1"})).json() == []
