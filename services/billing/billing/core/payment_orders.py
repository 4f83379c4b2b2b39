"""Payment orders: a customer asks to pay an amount through a provider's checkout (WeChat Pay, Alipay); the
provider's verified notice of the payment settles the order and credits the account.

An order lives 15 minutes; ``expired`` is what a pending order is after that, derived when it is read (no
timer changes it). Money the provider took is never refused for lateness: a notice for an expired order
credits the account all the same and marks the order ``paid_late``. A notice that does not fit its order
(another account, amount, currency or provider, or an order another transaction paid) credits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from amiflow_schemas.events.billing import PaymentReceived

from billing.core.payments import check_amount

ORDER_LIFETIME = timedelta(minutes=15)


class CheckoutProvider(StrEnum):
    """The providers a customer pays a payment order through."""

    WECHAT_PAY = "wechat_pay"
    ALIPAY = "alipay"


class OrderState(StrEnum):
    PENDING = "pending"  # waiting for the payer
    PAID = "paid"
    PAID_LATE = "paid_late"  # paid after the order had expired: credited all the same
    EXPIRED = "expired"  # never stored: a pending order past its expiry


class OrderError(ValueError):
    """An order or a notice for one that cannot be accepted; ``problem`` is a stable code."""

    def __init__(self, problem: str, reason: str) -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason


@dataclass(frozen=True)
class PaymentOrder:
    """One request to pay ``amount`` into an account through ``provider``, and what became of it."""

    order_id: str
    account_id: str
    amount: Decimal
    currency: str
    provider: CheckoutProvider
    state: OrderState  # as stored: pending, paid or paid_late (see `state_at`)
    created_at: datetime
    expires_at: datetime
    idempotency_key: str | None
    paid_at: datetime | None = None
    payment_event_id: UUID | None = None
    provider_transaction_id: str | None = None

    def state_at(self, now: datetime) -> OrderState:
        """The order's state as a reader sees it at ``now``: a pending order past its expiry is expired."""
        if self.state is OrderState.PENDING and now >= self.expires_at:
            return OrderState.EXPIRED
        return self.state

    @property
    def settled(self) -> bool:
        """True once a payment credited the order."""
        return self.state in (OrderState.PAID, OrderState.PAID_LATE)


def order_amount(amount: object, currency: str, maximum: Decimal) -> Decimal:
    """The amount an order may ask for: above zero, whole cents, at most ``maximum``."""
    check = check_amount(amount, currency, currency)
    if check.amount is None:
        raise OrderError(check.problem.value if check.problem else "invalid_amount", check.detail)
    if check.amount > maximum:
        raise OrderError("above_maximum", f"a payment order asks for at most {maximum} {currency}, "
                                          f"not {check.amount}")
    return check.amount


def new_order(order_id: str, account_id: str, amount: Decimal, currency: str, provider: CheckoutProvider,
              idempotency_key: str | None, now: datetime) -> PaymentOrder:
    """A pending order that expires ORDER_LIFETIME from ``now``."""
    return PaymentOrder(order_id, account_id, amount, currency, provider, OrderState.PENDING, now,
                        now + ORDER_LIFETIME, idempotency_key)


def same_request(order: PaymentOrder, amount: Decimal, provider: CheckoutProvider) -> bool:
    """True when a request repeating ``order``'s idempotency key asks for the same order."""
    return order.amount == amount and order.provider is provider


def check_payment(order: PaymentOrder, payment: PaymentReceived) -> None:
    """Refuse (OrderError) a payment that is not the one ``order`` asked for, or that comes after another
    transaction paid it; the transaction that paid it may be repeated (its credit answers again)."""
    if order.settled:
        if order.provider_transaction_id == payment.provider_transaction_id and \
                order.provider.value == payment.channel.value:
            return
        raise OrderError("order_settled", f"payment order {order.order_id} was paid by transaction "
                                          f"{order.provider_transaction_id} already")
    asked = (order.account_id, order.amount, order.currency, order.provider.value)
    given = (payment.account_id, payment.amount, payment.currency, payment.channel.value)
    if asked != given:
        raise OrderError("order_mismatch", f"payment order {order.order_id} asks for {order.amount} {order.currency} "
                                           f"into account {order.account_id} through {order.provider.value}, not "
                                           f"{payment.amount} {payment.currency} into account {payment.account_id} "
                                           f"through {payment.channel.value}")


def settle(order: PaymentOrder, payment: PaymentReceived, payment_event_id: UUID) -> PaymentOrder:
    """The order paid by ``payment``: ``paid_late`` when the provider took the money after it expired."""
    state = OrderState.PAID_LATE if payment.paid_at >= order.expires_at else OrderState.PAID
    return replace(order, state=state, paid_at=payment.paid_at, payment_event_id=payment_event_id,
                   provider_transaction_id=payment.provider_transaction_id)
