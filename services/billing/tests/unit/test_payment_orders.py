"""Payment orders: amounts bounded, 15 minutes to pay, a provider's payment checked against its order, a late
payment credited as paid_late and a second transaction for a paid order refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from amiflow_schemas.events.billing import PaymentChannel, PaymentReceived
from billing.core.payment_orders import (
    CheckoutProvider,
    OrderError,
    OrderState,
    check_payment,
    new_order,
    order_amount,
    same_request,
    settle,
)

NOW = datetime(2026, 7, 15, 2, 0, tzinfo=UTC)
ORDER = new_order("O-1", "ACC-1", Decimal("50.00"), "CNY", CheckoutProvider.WECHAT_PAY, "tap-1", NOW)


def _payment(transaction: str = "WX-1", paid_at: datetime = NOW, **changes: object) -> PaymentReceived:
    fields: dict[str, object] = {"account_id": "ACC-1", "channel": PaymentChannel.WECHAT_PAY,
                                 "provider_transaction_id": transaction, "amount": Decimal("50.00"),
                                 "currency": "CNY", "paid_at": paid_at, **changes}
    return PaymentReceived.model_validate(fields)


def test_an_order_is_pending_for_15_minutes_then_expired_when_read() -> None:
    assert ORDER.expires_at - ORDER.created_at == timedelta(minutes=15)
    assert ORDER.state_at(NOW + timedelta(minutes=14, seconds=59)) is OrderState.PENDING
    assert ORDER.state_at(NOW + timedelta(minutes=15)) is OrderState.EXPIRED
    assert ORDER.state is OrderState.PENDING  # nothing stored changes


@pytest.mark.parametrize(("amount", "problem"), [
    ("0.00", "not_positive"), ("-5", "not_positive"), ("0.001", "fraction_of_a_cent"), (1.5, "not_a_decimal"),
    ("5000.01", "above_maximum"), ("NaN", "not_a_decimal")])
def test_an_order_asks_for_whole_cents_above_zero_up_to_the_maximum(amount: object, problem: str) -> None:
    with pytest.raises(OrderError) as refused:
        order_amount(amount, "CNY", Decimal("5000.00"))
    assert refused.value.problem == problem and refused.value.reason
    assert order_amount("5000.00", "CNY", Decimal("5000.00")) == Decimal("5000.00")


def test_the_payment_it_asked_for_settles_it_and_a_late_one_settles_it_as_paid_late() -> None:
    event_id = uuid4()
    check_payment(ORDER, _payment())
    paid = settle(ORDER, _payment(paid_at=NOW + timedelta(minutes=3)), event_id)
    assert (paid.state, paid.payment_event_id, paid.provider_transaction_id) == (OrderState.PAID, event_id, "WX-1")
    assert paid.state_at(NOW + timedelta(days=1)) is OrderState.PAID
    late = settle(ORDER, _payment(paid_at=NOW + timedelta(minutes=15)), event_id)
    assert late.state is OrderState.PAID_LATE


@pytest.mark.parametrize("changes", [{"amount": Decimal("49.99")}, {"account_id": "ACC-2"}, {"currency": "HKD"},
                                     {"channel": PaymentChannel.ALIPAY}])
def test_a_payment_that_is_not_the_one_asked_for_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(OrderError) as refused:
        check_payment(ORDER, _payment(**changes))
    assert refused.value.problem == "order_mismatch" and "O-1" in refused.value.reason


def test_a_paid_order_takes_its_own_transaction_again_and_no_other() -> None:
    paid = settle(ORDER, _payment(), uuid4())
    check_payment(paid, _payment())  # a repeated notice: its credit answers again
    with pytest.raises(OrderError, match="paid by transaction WX-1 already") as refused:
        check_payment(paid, _payment("WX-2"))
    assert refused.value.problem == "order_settled"


def test_a_repeated_key_is_the_same_request_only_for_the_same_amount_and_provider() -> None:
    assert same_request(ORDER, Decimal("50.0"), CheckoutProvider.WECHAT_PAY)
    assert not same_request(ORDER, Decimal("60.00"), CheckoutProvider.WECHAT_PAY)
    assert not same_request(ORDER, Decimal("50.00"), CheckoutProvider.ALIPAY)
