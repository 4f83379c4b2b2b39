"""The customer's payment flow through billing's API on SQLite and PostgreSQL: payment orders created (once per
idempotency key), paid through the sandbox checkout or a signed provider callback — each order credited once,
a notice that does not fit its order refused, a late one credited as paid_late — and who may see and pay what."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from amiflow_runtime.testing import auth_headers
from billing.config import BillingSettings
from billing.main import api, main
from pydantic import ValidationError

pytestmark = pytest.mark.integration

TENANT = "riverside"


def _customer(account_id: str) -> dict[str, str]:
    return auth_headers(TENANT, roles=("customer",), account_id=account_id, subject=f"cust-{account_id}")


async def _order(billing_api: Any, account_id: str, amount: Any = "50.00", provider: str = "wechat_pay",
                 headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    return await billing_api.post(f"/v1/accounts/{account_id}/payment-orders", headers=headers or {},
                                  json={"amount": amount, "provider": provider, **extra})


def _notice(order: dict[str, Any], transaction: str, paid_at: datetime, **changes: Any) -> bytes:
    return json.dumps({"account_id": order["account_id"], "provider_transaction_id": transaction,
                       "amount": order["amount"], "currency": order["currency"], "paid_at": paid_at.isoformat(),
                       "order_id": order["order_id"], **changes}).encode()


async def test_a_customer_creates_an_order_reads_it_and_the_same_key_answers_the_same_order(billing_api: Any) -> None:
    await billing_api.open_account("ACC-O")
    own = _customer("ACC-O")
    created = await _order(billing_api, "ACC-O", headers=own, idempotency_key="tap-1")
    assert created.status_code == 201, created.text
    order = created.json()
    assert {k: order[k] for k in ("account_id", "amount", "currency", "provider", "state", "paid_at")} == {
        "account_id": "ACC-O", "amount": "50.00", "currency": "CNY", "provider": "wechat_pay", "state": "pending",
        "paid_at": None}
    assert order["checkout"] == {"kind": "sandbox", "confirm_path": f"/v1/payment-sandbox/{order['order_id']}/confirm"}
    assert datetime.fromisoformat(order["expires_at"]) - datetime.fromisoformat(order["created_at"]) == timedelta(
        minutes=15)

    again = await _order(billing_api, "ACC-O", headers=own, idempotency_key="tap-1")
    assert again.status_code == 200 and again.json() == order
    reused = await _order(billing_api, "ACC-O", "60.00", headers=own, idempotency_key="tap-1")
    assert reused.status_code == 409 and reused.json()["detail"]["problem"] == "key_used"
    billing_api.at(billing_api.now + timedelta(minutes=1))
    other = await _order(billing_api, "ACC-O", "20.00", "alipay", headers=own)
    assert other.status_code == 201

    shown = await billing_api.get(f"/v1/accounts/ACC-O/payment-orders/{order['order_id']}", headers=own)
    assert shown.status_code == 200 and shown.json() == order
    listed = (await billing_api.get("/v1/accounts/ACC-O/payment-orders", headers=own)).json()["items"]
    assert [o["order_id"] for o in listed] == [other.json()["order_id"], order["order_id"]]  # newest first
    newest = (await billing_api.get("/v1/accounts/ACC-O/payment-orders", params={"limit": 1})).json()["items"]
    assert [o["order_id"] for o in newest] == [other.json()["order_id"]]
    assert (await billing_api.get("/v1/accounts/ACC-O/payment-orders/no-such-order")).status_code == 404
    assert (await _order(billing_api, "NOBODY")).status_code == 404
    assert await billing_api.balance("ACC-O") == 0  # an order is no money yet


@pytest.mark.parametrize(("amount", "problem"), [
    ("0", "not_positive"), ("-1.00", "not_positive"), ("1.005", "fraction_of_a_cent"), (12.5, "not_a_decimal"),
    ("5000.01", "above_maximum"), ("fifty", "not_a_decimal"),
])
async def test_an_order_amount_is_bounded(billing_api: Any, amount: Any, problem: str) -> None:
    await billing_api.open_account("ACC-B")
    refused = await _order(billing_api, "ACC-B", amount)
    assert refused.status_code == 422 and refused.json()["detail"]["problem"] == problem, refused.text
    assert (await _order(billing_api, "ACC-B", "5000.00")).status_code == 201


async def test_a_sandbox_order_is_credited_once_however_often_it_is_confirmed_or_called_back(billing_api: Any) -> None:
    await billing_api.open_account("ACC-S")
    own = _customer("ACC-S")
    order = (await _order(billing_api, "ACC-S", "50.00", headers=own)).json()
    confirm = order["checkout"]["confirm_path"]

    paid = await billing_api.post(confirm, headers=own)
    assert paid.status_code == 200, paid.text
    assert (paid.json()["state"], paid.json()["checkout"]) == ("paid", None)
    assert await billing_api.balance("ACC-S") == Decimal("50.00")
    billing_api.at(billing_api.now + timedelta(minutes=1))
    assert (await billing_api.post(confirm, headers=own)).json() == paid.json()
    repeated = await billing_api.callback("wechat_pay", _notice(order, f"sandbox-{order['order_id']}",
                                                                billing_api.now - timedelta(minutes=1)))
    assert repeated.status_code == 200 and repeated.json()["event_id"] == paid.json()["payment_event_id"]
    another = await billing_api.callback("wechat_pay", _notice(order, "WX-OTHER", billing_api.now))
    assert another.status_code == 409 and another.json()["detail"]["problem"] == "order_settled"

    assert await billing_api.balance("ACC-S") == Decimal("50.00")
    [payment] = [e.payload for e in await billing_api.staged("PaymentReceived")]
    assert (payment.channel.value, payment.provider_transaction_id, payment.amount) == (
        "wechat_pay", f"sandbox-{order['order_id']}", Decimal("50.00"))
    shown = (await billing_api.get(f"/v1/accounts/ACC-S/payment-orders/{order['order_id']}")).json()
    assert shown["state"] == "paid" and shown["payment_event_id"] == paid.json()["payment_event_id"]


async def test_a_signed_callback_naming_an_order_pays_it_and_a_later_sandbox_confirmation_credits_nothing(
        billing_api: Any) -> None:
    await billing_api.open_account("ACC-C")
    order = (await _order(billing_api, "ACC-C", "80.00", "wechat_pay")).json()
    called = await billing_api.callback("wechat_pay", _notice(order, "WX-9", billing_api.now))
    assert called.status_code == 201, called.text
    shown = (await billing_api.get(f"/v1/accounts/ACC-C/payment-orders/{order['order_id']}")).json()
    assert (shown["state"], shown["payment_event_id"]) == ("paid", called.json()["event_id"])
    late_confirm = await billing_api.post(order["checkout"]["confirm_path"])
    assert late_confirm.status_code == 409 and late_confirm.json()["detail"]["problem"] == "order_settled"
    assert await billing_api.balance("ACC-C") == Decimal("80.00")


@pytest.mark.parametrize("changes", [{"amount": "60.00"}, {"currency": "HKD"}, {"account_id": "ACC-ELSE"}])
async def test_a_callback_that_does_not_fit_its_order_is_refused_and_credits_nothing(
        billing_api: Any, changes: dict[str, str]) -> None:
    for account_id in ("ACC-M", "ACC-ELSE"):
        await billing_api.open_account(account_id)
    order = (await _order(billing_api, "ACC-M", "50.00")).json()
    refused = await billing_api.callback("wechat_pay", _notice(order, "WX-M", billing_api.now, **changes))
    assert refused.status_code in (409, 422), refused.text
    assert refused.json()["detail"]["problem"] in ("order_mismatch", "wrong_currency")
    alipay = (await _order(billing_api, "ACC-M", "50.00", "alipay")).json()
    through_wechat = await billing_api.callback("wechat_pay", _notice(alipay, "WX-A", billing_api.now))
    assert through_wechat.status_code == 409 and through_wechat.json()["detail"]["problem"] == "order_mismatch"
    unknown = await billing_api.callback("wechat_pay", _notice({**order, "order_id": "NO-SUCH"}, "WX-U",
                                                               billing_api.now))
    assert unknown.status_code == 404 and unknown.json()["detail"]["problem"] == "unknown_order"
    assert await billing_api.balance("ACC-M") == 0 and await billing_api.staged("PaymentReceived") == []
    still = (await billing_api.get(f"/v1/accounts/ACC-M/payment-orders/{order['order_id']}")).json()
    assert still["state"] == "pending"


async def test_an_order_expires_after_15_minutes_and_a_late_payment_still_credits_as_paid_late(
        billing_api: Any) -> None:
    await billing_api.open_account("ACC-E")
    order = (await _order(billing_api, "ACC-E", "30.00")).json()
    billing_api.at(billing_api.now + timedelta(minutes=15))
    expired = (await billing_api.get(f"/v1/accounts/ACC-E/payment-orders/{order['order_id']}")).json()
    assert (expired["state"], expired["checkout"]) == ("expired", None)
    billing_api.at(billing_api.now + timedelta(minutes=1))
    late = await billing_api.callback("wechat_pay", _notice(order, "WX-LATE", billing_api.now))
    assert late.status_code == 201, late.text
    assert await billing_api.balance("ACC-E") == Decimal("30.00")
    shown = (await billing_api.get(f"/v1/accounts/ACC-E/payment-orders/{order['order_id']}")).json()
    assert (shown["state"], datetime.fromisoformat(shown["paid_at"])) == ("paid_late", billing_api.now)

    second = (await _order(billing_api, "ACC-E", "10.00")).json()
    billing_api.at(billing_api.now + timedelta(hours=1))
    confirmed = await billing_api.post(f"/v1/payment-sandbox/{second['order_id']}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["state"] == "paid_late"
    assert await billing_api.balance("ACC-E") == Decimal("40.00")


async def test_a_customer_never_sees_or_pays_another_accounts_order(billing_api: Any) -> None:
    for account_id in ("ACC-MINE", "ACC-THEIRS"):
        await billing_api.open_account(account_id)
    mine, theirs = _customer("ACC-MINE"), _customer("ACC-THEIRS")
    order = (await _order(billing_api, "ACC-THEIRS", headers=theirs)).json()
    for path in (f"/v1/accounts/ACC-THEIRS/payment-orders/{order['order_id']}",
                 "/v1/accounts/ACC-THEIRS/payment-orders", f"/v1/accounts/ACC-MINE/payment-orders/{order['order_id']}"):
        assert (await billing_api.get(path, headers=mine)).status_code == 404, path
    assert (await _order(billing_api, "ACC-THEIRS", headers=mine)).status_code == 404
    confirm = order["checkout"]["confirm_path"]
    assert (await billing_api.post(confirm, headers=mine)).status_code == 404
    assert await billing_api.balance("ACC-THEIRS") == 0
    auditor = auth_headers(TENANT, roles=("auditor",))
    assert (await billing_api.post(confirm, headers=auditor)).status_code == 403
    operator = auth_headers(TENANT, roles=("operator",), subject="op-1")
    assert (await billing_api.post(confirm, headers=operator)).status_code == 200  # at the counter
    assert await billing_api.balance("ACC-THEIRS") == Decimal("50.00")


async def test_an_order_or_its_confirmation_is_not_undone_and_the_answer_says_why(billing_api: Any) -> None:
    await billing_api.open_account("ACC-U")
    order = (await _order(billing_api, "ACC-U")).json()
    assert (await billing_api.post(order["checkout"]["confirm_path"])).status_code == 200
    for action, words in (("POST /v1/accounts/{account_id}/payment-orders", "expires by itself"),
                          ("POST /v1/payment-sandbox/{order_id}/confirm", "money received")):
        entries = (await billing_api.get("/v1/audit", params={"action": action})).json()["entries"]
        assert entries, action
        refused = await billing_api.post(f"/v1/audit/{entries[-1]['id']}/undo", json={"reason": "oops"})
        assert refused.status_code == 409 and refused.json()["detail"]["problem"] == "cannot_undo", refused.text
        assert words in refused.json()["detail"]["reason"]
    assert await billing_api.balance("ACC-U") == Decimal("50.00")


@pytest.fixture
async def without_sandbox(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = api(BillingSettings(database_url=database_url, payment_sandbox=False))
    await app.state.runtime.migrate()
    headers = auth_headers(TENANT)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://billing",
                                 headers=headers) as http:
        yield http
    await app.state.runtime.engine.dispose()


async def test_without_the_sandbox_no_provider_takes_orders(without_sandbox: httpx.AsyncClient) -> None:
    opened = await without_sandbox.post("/v1/accounts", json={"account_id": "ACC-N", "customer_id": "C-N",
                                                              "customer_kind": "household"})
    assert opened.status_code == 201
    refused = await without_sandbox.post("/v1/accounts/ACC-N/payment-orders",
                                         json={"amount": "50.00", "provider": "alipay"})
    assert refused.status_code == 422 and refused.json()["detail"]["problem"] == "provider_unavailable"
    assert "alipay" in refused.json()["detail"]["reason"]
    assert (await without_sandbox.get("/v1/accounts/ACC-N/payment-orders")).json() == {"items": []}
    off = await without_sandbox.post("/v1/payment-sandbox/any-order/confirm")
    assert off.status_code == 404 and off.json()["detail"]["problem"] == "sandbox_disabled"


def test_the_sandbox_is_on_in_development_off_in_production_and_refused_there_at_start_up(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("BILLING_PAYMENT_SANDBOX", raising=False)
    monkeypatch.setenv("AMIFLOW_ENV", "development")
    assert BillingSettings().sandbox_checkout
    monkeypatch.setenv("AMIFLOW_ENV", "production")
    assert not BillingSettings().sandbox_checkout
    monkeypatch.setenv("BILLING_PAYMENT_SANDBOX", "true")
    with pytest.raises(ValidationError, match="BILLING_PAYMENT_SANDBOX=true is refused in production"):
        BillingSettings()
    assert main(["api"]) == 2
    assert "BILLING_PAYMENT_SANDBOX=true is refused in production" in capsys.readouterr().err
    monkeypatch.setenv("BILLING_PAYMENT_SANDBOX", "false")
    assert not BillingSettings().sandbox_checkout
    monkeypatch.setenv("AMIFLOW_ENV", "development")
    assert not BillingSettings().sandbox_checkout  # asked for off, off
    monkeypatch.setenv("BILLING_PAYMENT_ORDER_MAX_AMOUNT", "200.005")
    with pytest.raises(ValidationError, match="more than 2 decimal places"):
        BillingSettings()
