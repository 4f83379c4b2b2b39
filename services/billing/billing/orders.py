"""What billing's API does with payment orders: create one (idempotent per key), read them, and settle one
with the payment its provider reports — in the transaction that credits the payment.

Locks, in this order wherever several are taken: the order, then the payment's credit keys and the
account (`operations.credit`); a sandbox confirmation and a provider notice of one order wait for each
other instead of both crediting.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from amiflow_runtime.db import lock_for_transaction
from amiflow_schemas.events.billing import PaymentReceived
from sqlalchemy.ext.asyncio import AsyncSession

from billing import operations
from billing.adapters import order_store
from billing.core import payment_orders as orders
from billing.core.accounts import AccountStatus
from billing.core.payment_orders import CheckoutProvider, OrderError, PaymentOrder
from billing.operations import Credit, Refusal, Refused


async def create_order(session: AsyncSession, tenant_id: str, account_id: str, amount: object,
                       provider: CheckoutProvider, key: str | None, maximum: Decimal,
                       now: datetime) -> tuple[PaymentOrder, bool]:
    """A new pending order, or the one an earlier request with the same key created (then False)."""
    account = await operations.account_of(session, tenant_id, account_id)
    try:
        value = orders.order_amount(amount, account.currency, maximum)
    except OrderError as exc:
        raise Refused(Refusal.INVALID, exc.reason, exc.problem) from None
    if key is not None:
        # Two requests with one key wait for each other: the second finds the first's order.
        await lock_for_transaction(session, tenant_id, "payment-order-key", f"{account_id}/{key}")
        earlier = await order_store.order_with_key(session, tenant_id, account_id, key)
        if earlier is not None:
            if not orders.same_request(earlier, value, provider):
                raise Refused(Refusal.CONFLICT, f"idempotency key {key} was used for payment order {earlier.order_id} "
                                                f"of {earlier.amount} {earlier.currency} through "
                                                f"{earlier.provider.value}", "key_used")
            return earlier, False
    if account.status is AccountStatus.CLOSED:
        raise Refused(Refusal.CONFLICT, f"account {account_id} is closed", "account_closed")
    order = orders.new_order(str(uuid.uuid4()), account_id, value, account.currency, provider, key, now)
    await order_store.insert_order(session, tenant_id, order)
    return order, True


async def order_of(session: AsyncSession, tenant_id: str, order_id: str, account_id: str | None = None) -> PaymentOrder:
    """The order; refused as unknown when it does not exist or (given ``account_id``) is another account's."""
    order = await order_store.order(session, tenant_id, order_id)
    if order is None or (account_id is not None and order.account_id != account_id):
        raise Refused(Refusal.NOT_FOUND, f"no payment order {order_id}", "unknown_order")
    return order


async def credit_order(session: AsyncSession, tenant_id: str, order_id: str, payment: PaymentReceived,
                       now: datetime) -> Credit:
    """Credit the payment a provider reports for an order and mark the order paid (or paid late), at once."""
    await lock_for_transaction(session, tenant_id, "payment-order", order_id)
    order = await order_of(session, tenant_id, order_id)
    try:
        orders.check_payment(order, payment)
    except OrderError as exc:
        raise Refused(Refusal.CONFLICT, exc.reason, exc.problem) from None
    credit = await operations.credit(session, tenant_id, payment, now)
    if not order.settled:
        await order_store.save_settled(session, tenant_id, orders.settle(order, payment, credit.event.event_id))
    return credit
