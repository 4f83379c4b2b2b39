"""Money in through billing's API on SQLite and PostgreSQL: payments credited once per provider transaction,
amounts and currencies refused with reasons, signed provider callbacks, batch recharges and subsidies."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from billing.config import BillingSettings
from billing.core.payments import callback_signature
from pydantic import ValidationError

pytestmark = pytest.mark.integration


async def test_the_same_provider_transaction_twice_credits_once_and_answers_the_first_result(
        billing_api: Any) -> None:
    await billing_api.open_account("ACC-P")
    first = await billing_api.pay("ACC-P", "50.00", "4200001234")
    assert first.status_code == 201, first.text
    billing_api.at(billing_api.now + timedelta(minutes=3))
    again = await billing_api.pay("ACC-P", "50.00", "4200001234")
    assert again.status_code == 200 and again.json() == first.json()
    assert first.json()["amount"] == "50.00" and first.json()["event_type"] == "PaymentReceived"
    assert await billing_api.balance("ACC-P") == Decimal("50.00")
    other_channel = await billing_api.pay("ACC-P", "50.00", "4200001234", channel="alipay")
    assert other_channel.status_code == 201  # the key is (channel, transaction): another provider's id space
    different = await billing_api.pay("ACC-P", "60.00", "4200001234")
    assert different.status_code == 409 and different.json()["detail"]["problem"] == "key_used"
    assert len(await billing_api.staged("PaymentReceived")) == 2
    assert await billing_api.balance("ACC-P") == Decimal("100.00")


@pytest.mark.parametrize(("amount", "currency", "problem"), [
    ("-5.00", "CNY", "not_positive"), ("0", "CNY", "not_positive"), ("0.00", "CNY", "not_positive"),
    ("fifty", "CNY", "not_a_decimal"), ("NaN", "CNY", "not_a_decimal"), (12.5, "CNY", "not_a_decimal"),
    ("1.005", "CNY", "fraction_of_a_cent"), ("50.00", "USD", "wrong_currency"), (None, "CNY", "not_a_decimal"),
])
async def test_an_amount_or_currency_that_is_not_the_tenants_money_is_refused_and_nothing_credited(
        billing_api: Any, amount: Any, currency: str, problem: str) -> None:
    await billing_api.open_account("ACC-R")
    refused = await billing_api.pay("ACC-R", amount, "T-BAD", currency=currency)
    assert refused.status_code == 422 and refused.json()["detail"]["problem"] == problem, refused.text
    assert refused.json()["detail"]["reason"]
    assert await billing_api.balance("ACC-R") == 0
    assert await billing_api.staged("PaymentReceived") == []
    assert (await billing_api.pay("ACC-R", "1.50", "T-BAD")).status_code == 201  # the key was not used up


async def test_a_payment_to_an_unknown_account_is_refused_with_404(billing_api: Any) -> None:
    refused = await billing_api.pay("NOBODY", "10.00", "T-1")
    assert refused.status_code == 404 and refused.json()["detail"]["problem"] == "unknown_account"
    assert await billing_api.staged("PaymentReceived") == []


async def test_a_payment_lifting_a_depleted_balance_restores_it(billing_api: Any) -> None:
    await billing_api.household("ACC-D")
    await billing_api.pay("ACC-D", "0.30", "T-0")
    billing_api.at(billing_api.now + timedelta(minutes=1))
    await billing_api.rate("ACC-D", "WM-ACC-D", "water", 2, "0.16")  # 0.80: balance -0.50 (billing.md B2)
    [depleted] = [e.payload for e in await billing_api.staged("BalanceDepleted")]
    assert depleted.balance == Decimal("-0.50")
    assert sorted(m.meter_id for m in depleted.meters) == ["EM-ACC-D", "WM-ACC-D"]
    billing_api.at(billing_api.now + timedelta(minutes=1))
    await billing_api.pay("ACC-D", "50.00", "T-1")
    [restored] = [e.payload for e in await billing_api.staged("BalanceRestored")]
    assert restored.balance == Decimal("49.50")
    assert (await billing_api.get("/v1/accounts/ACC-D/balance")).json()["status"] == "normal"


def notice(account_id: str, transaction: str, amount: str = "100.00") -> bytes:
    return json.dumps({"account_id": account_id, "provider_transaction_id": transaction, "amount": amount,
                       "currency": "CNY", "paid_at": "2026-07-15T09:59:00+08:00"}).encode()


async def test_a_signed_callback_is_credited_once_even_when_replayed(billing_api: Any) -> None:
    await billing_api.open_account("ACC-C")
    body = notice("ACC-C", "WX-1")
    accepted = await billing_api.callback("wechat_pay", body)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["channel"] == "wechat_pay" and accepted.json()["paid_at"] == "2026-07-15T09:59:00+08:00"
    billing_api.at(billing_api.now + timedelta(minutes=2))  # a captured callback replayed within the window
    replayed = await billing_api.callback("wechat_pay", body, signed_at=billing_api.now - timedelta(minutes=2))
    assert replayed.status_code == 200 and replayed.json()["event_id"] == accepted.json()["event_id"]
    assert await billing_api.balance("ACC-C") == Decimal("100.00")


async def test_a_bad_signature_is_refused_logged_without_secrets_and_credits_nothing(
        billing_api: Any, caplog: pytest.LogCaptureFixture) -> None:
    await billing_api.open_account("ACC-S")
    body = notice("ACC-S", "WX-2")
    forged = "0" * 64
    with caplog.at_level(logging.WARNING, logger="amiflow.billing.payments"):
        wrong_secret = await billing_api.callback("wechat_pay", body, secret="not-the-secret")
        made_up = await billing_api.callback("wechat_pay", body, signature=forged)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["detail"]["problem"] == "bad_signature"
    assert made_up.status_code == 401
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("bad_signature" in r.getMessage() for r in warnings)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert billing_api.WECHAT_SECRET not in logged and forged not in logged
    assert await billing_api.balance("ACC-S") == 0 and await billing_api.staged("PaymentReceived") == []


async def test_a_body_changed_after_signing_is_refused(billing_api: Any) -> None:
    await billing_api.open_account("ACC-T")
    body = notice("ACC-T", "WX-3")
    timestamp = str(int(billing_api.now.timestamp()))
    signature = callback_signature(billing_api.WECHAT_SECRET.encode(), timestamp, body)
    answer = await billing_api.post("/v1/payments/callbacks/wechat_pay", content=body.replace(b"100.00", b"900.00"),
                                    headers={"X-Amiflow-Timestamp": timestamp, "X-Amiflow-Signature": signature,
                                             "Content-Type": "application/json"})
    assert answer.status_code == 401 and answer.json()["detail"]["problem"] == "bad_signature"
    assert await billing_api.balance("ACC-T") == 0


async def test_stale_unsigned_and_unconfigured_callbacks_are_refused(billing_api: Any) -> None:
    await billing_api.open_account("ACC-O")
    stale = await billing_api.callback("wechat_pay", notice("ACC-O", "WX-4"),
                                       signed_at=billing_api.now - timedelta(minutes=6))
    assert stale.status_code == 401 and stale.json()["detail"]["problem"] == "stale_timestamp"
    unsigned = await billing_api.post("/v1/payments/callbacks/wechat_pay", content=notice("ACC-O", "WX-5"))
    assert unsigned.status_code == 401 and unsigned.json()["detail"]["problem"] == "missing_header"
    no_secret = await billing_api.callback("alipay", notice("ACC-O", "ALI-1"))
    assert no_secret.status_code == 404 and no_secret.json()["detail"]["problem"] == "provider_not_configured"
    assert (await billing_api.callback("paypal", notice("ACC-O", "PP-1"))).status_code == 422
    garbled = await billing_api.callback("wechat_pay", b'{"account_id": "ACC-O"}')
    assert garbled.status_code == 422  # authentic, but not a payment notice
    assert await billing_api.balance("ACC-O") == 0 and await billing_api.staged("PaymentReceived") == []


async def test_a_batch_recharge_answers_each_line_and_one_bad_line_blocks_no_other(billing_api: Any) -> None:
    for account_id in ("B-1", "B-2"):
        await billing_api.open_account(account_id)
    batch = {"batch_id": "PAYROLL-2026-07", "lines": [
        {"account_id": "B-1", "amount": "100.00", "reason": "July payroll deduction"},
        {"account_id": "NOBODY", "amount": "100.00", "reason": "July payroll deduction"},
        {"account_id": "B-2", "amount": "1.005", "reason": "July payroll deduction"},
        {"amount": "5.00"},
        {"account_id": "B-2", "amount": "80.00", "reason": "July payroll deduction"},
    ]}
    answer = await billing_api.post("/v1/recharges/batch", json=batch)
    assert answer.status_code == 200, answer.text
    lines = answer.json()["lines"]
    assert [(line["line_number"], line["status"], line["problem"]) for line in lines] == [
        (1, "accepted", None), (2, "rejected", "unknown_account"), (3, "rejected", "fraction_of_a_cent"),
        (4, "rejected", "invalid_line"), (5, "accepted", None)]
    assert "account_id" in lines[3]["reason"]
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (2, 3)
    again = (await billing_api.post("/v1/recharges/batch", json=batch)).json()
    assert [line["status"] for line in again["lines"]] == ["duplicate", "rejected", "rejected", "rejected",
                                                           "duplicate"]
    assert again["lines"][0]["event_id"] == lines[0]["event_id"]
    assert (await billing_api.balance("B-1"), await billing_api.balance("B-2")) == (Decimal(100), Decimal(80))
    payments = [e.payload for e in await billing_api.staged("PaymentReceived")]
    assert [(p.batch_id, p.line_number, p.channel.value) for p in payments] == [
        ("PAYROLL-2026-07", 1, "operator"), ("PAYROLL-2026-07", 5, "operator")]


async def test_a_subsidy_batch_grants_each_line_once_and_its_id_cannot_be_reused_for_recharges(
        billing_api: Any) -> None:
    await billing_api.open_account("S-1")
    batch = {"batch_id": "HEAT-AID-2026", "lines": [{"account_id": "S-1", "amount": "25.00",
                                                     "reason": "winter heating aid"}]}
    assert (await billing_api.post("/v1/subsidies/batch", json=batch)).json()["accepted"] == 1
    assert (await billing_api.post("/v1/subsidies/batch", json=batch)).json()["duplicate"] == 1
    reused = (await billing_api.post("/v1/recharges/batch", json=batch)).json()["lines"][0]
    assert (reused["status"], reused["problem"]) == ("rejected", "key_used")
    [granted] = [e.payload for e in await billing_api.staged("SubsidyGranted")]
    assert (granted.reason, granted.amount, granted.line_number) == ("winter heating aid", Decimal("25.00"), 1)
    assert await billing_api.balance("S-1") == Decimal("25.00")


def test_provider_secrets_come_as_json_and_placeholders_are_refused_outside_development(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_PAYMENT_PROVIDER_SECRETS", '{"wechat_pay": "changeme"}')
    assert BillingSettings().provider_secret("wechat_pay") == b"changeme"  # development takes anything
    assert BillingSettings().provider_secret("alipay") is None
    monkeypatch.setenv("AMIFLOW_ENV", "production")
    with pytest.raises(ValidationError, match=r"placeholder secrets .*payment_provider_secrets\[wechat_pay\]") as bad:
        BillingSettings()
    assert "changeme" not in str(bad.value)
    monkeypatch.setenv("BILLING_PAYMENT_PROVIDER_SECRETS", '{"wechat_pay": "9f2c41d0b7e35a86"}')
    assert BillingSettings().provider_secret("wechat_pay") == b"9f2c41d0b7e35a86"
    monkeypatch.setenv("BILLING_PAYMENT_PROVIDER_SECRETS", '{"paypal": "9f2c41d0b7e35a86"}')
    with pytest.raises(ValidationError, match="unknown providers: paypal"):
        BillingSettings()
