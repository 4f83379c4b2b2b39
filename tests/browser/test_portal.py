"""Issue 11 in a real browser on a phone: a customer sees their balance, pays through the payment flow (the
sandbox checkout stands in for the provider's app) and sees the balance change; a wrong password is refused
with its reason, and the console sends a customer back to the portal.

The prepaid account (its own tariff, a meter, an opening payment) and its customer's login are made through
billing's and identity's APIs in the demo tenant under ids of this run. The scenario is tests/browser/portal.mjs;
the screenshots stay in test-artifacts/browser/.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from .harness import Browser, Platform, admin, new_user

pytestmark = pytest.mark.e2e

OPENING = Decimal("123.45")
PAID = Decimal("50.00")
SCENARIO_TIMEOUT_S = 180.0
WRONG_PASSWORD_REASON = "the username or password is wrong"  # identity's words for invalid_grant


async def open_prepaid_account(platform: Platform, suffix: str) -> str:
    """A household account paying for one water meter at a tariff of its own, credited OPENING at the counter."""
    tariff_id, account_id = f"br-water-{suffix}", f"BR-{suffix}"
    year_start = datetime(datetime.now(ZoneInfo("Asia/Shanghai")).year, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    async with admin(platform.api["billing"]) as billing:
        made = await billing.post("/v1/tariffs", json={
            "tariff_id": tariff_id, "version_id": f"{tariff_id}-1", "utility": "water", "unit": "m3",
            "tier_period": "calendar_year", "effective_from": year_start.isoformat(),
            "tiers": [{"up_to": None, "unit_price": "5.00"}]})
        assert made.status_code == 201, made.text
        opened = await billing.post("/v1/accounts", json={
            "account_id": account_id, "customer_id": f"BR-C-{suffix}", "customer_kind": "household",
            "settings": {"low_balance_amount": "20.00", "low_balance_days": 2}})
        assert opened.status_code == 201, opened.text
        linked = await billing.post(f"/v1/accounts/{account_id}/meters", json={
            "meter_id": f"BR-{suffix}-WM", "utility": "water", "tariff_id": tariff_id})
        assert linked.status_code == 201, linked.text
        paid = await billing.post("/v1/payments", json={
            "account_id": account_id, "channel": "cash", "provider_transaction_id": f"BR-OPENING-{suffix}",
            "amount": str(OPENING), "currency": opened.json()["currency"]})
        assert paid.status_code == 201, paid.text
        assert Decimal((await billing.get(f"/v1/accounts/{account_id}/balance")).json()["balance"]) == OPENING
    return account_id


async def test_a_customer_sees_the_balance_pays_on_the_phone_and_sees_the_balance_change(
        platform: Platform, browser: Browser) -> None:
    suffix = uuid.uuid4().hex[:10].upper()
    account_id = await open_prepaid_account(platform, suffix)
    username = f"br-customer-{suffix.lower()}"
    password = await new_user(platform.api["identity"], username, ["customer"], account_id=account_id)

    run = await browser.run("portal", SCENARIO_TIMEOUT_S, username=username, password=password,
                            amount=str(PAID), provider="wechat_pay")
    assert run.passed, run.explain()
    result = run.result
    print(f"portal scenario: {run.seconds:.1f} s; steps {[(s['name'], s['ms']) for s in result['steps']]}; "
          f"order states {result['order_states']}; console errors {len(result['console_errors'])}")

    # The refusals: the reason of a wrong password is shown; the console is not the customer's.
    assert WRONG_PASSWORD_REASON in result["login_error"], result["login_error"]
    assert result["console_sent_to"].startswith("/portal/"), result["console_sent_to"]
    # The balance as the page showed it, before and after, compared as decimals.
    assert Decimal(result["balance_before"]) == OPENING
    assert Decimal(result["balance_after"]) == OPENING + PAID
    assert result["balance_state_before"] and result["balance_state_after"]

    # Billing's side: one order, paid, and exactly one credit of 50.00 for it (no double credit).
    order_id = result["order_id"]
    async with admin(platform.api["billing"]) as billing:
        orders = (await billing.get(f"/v1/accounts/{account_id}/payment-orders")).json()["items"]
        ledger = (await billing.get(f"/v1/accounts/{account_id}/ledger")).json()
        balance = (await billing.get(f"/v1/accounts/{account_id}/balance")).json()
    assert [(o["order_id"], o["state"], Decimal(o["amount"])) for o in orders] == [(order_id, "paid", PAID)], orders
    payments = [e for e in ledger if e["event_type"] == "PaymentReceived"]
    for_order = [e for e in payments if e["payload"]["provider_transaction_id"] == f"sandbox-{order_id}"]
    assert [Decimal(e["amount"]) for e in for_order] == [PAID], payments
    assert str(for_order[0]["event_id"]) == str(orders[0]["payment_event_id"])
    assert sorted(Decimal(e["amount"]) for e in payments) == [PAID, OPENING]
    assert Decimal(balance["balance"]) == OPENING + PAID
