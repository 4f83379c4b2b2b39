"""Payment orders as billing keeps them: one row per order, tenant-scoped.

Orders are working state of the checkout, not billing facts: the payment that settles one is a
PaymentReceived on the ledger like any other, so a rebuild from the topics restores every balance
without them.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from amiflow_runtime.db import ExactDecimal, UtcDateTime
from sqlalchemy import Column, Index, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters.db import metadata
from billing.core.money import CENT
from billing.core.payment_orders import CheckoutProvider, OrderState, PaymentOrder

payment_orders = Table(
    "payment_orders", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("order_id", String(36), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("amount", ExactDecimal(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # pending, paid or paid_late; expired is derived
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("idempotency_key", String(64), nullable=True),
    Column("paid_at", UtcDateTime(), nullable=True),
    Column("payment_event_id", String(36), nullable=True),
    Column("provider_transaction_id", String(128), nullable=True),
    Index("payment_orders_by_account", "tenant_id", "account_id", "created_at"),
    # A repeated request with the same key finds its order; NULL keys never collide.
    Index("payment_orders_by_key", "tenant_id", "account_id", "idempotency_key", unique=True),
)


def _order(row: Any) -> PaymentOrder:
    # Whole cents by construction; PostgreSQL answers with 9 places.
    return PaymentOrder(order_id=row.order_id, account_id=row.account_id, amount=row.amount.quantize(CENT),
                        currency=row.currency,
                        provider=CheckoutProvider(row.provider), state=OrderState(row.state),
                        created_at=row.created_at, expires_at=row.expires_at, idempotency_key=row.idempotency_key,
                        paid_at=row.paid_at,
                        payment_event_id=UUID(row.payment_event_id) if row.payment_event_id else None,
                        provider_transaction_id=row.provider_transaction_id)


async def insert_order(session: AsyncSession, tenant_id: str, order: PaymentOrder) -> None:
    await session.execute(insert(payment_orders).values(
        tenant_id=tenant_id, order_id=order.order_id, account_id=order.account_id, amount=order.amount,
        currency=order.currency, provider=order.provider.value, state=order.state.value,
        created_at=order.created_at, expires_at=order.expires_at, idempotency_key=order.idempotency_key))


async def order(session: AsyncSession, tenant_id: str, order_id: str) -> PaymentOrder | None:
    row = (await session.execute(select(payment_orders).where(
        payment_orders.c.tenant_id == tenant_id, payment_orders.c.order_id == order_id))).first()
    return None if row is None else _order(row)


async def order_with_key(session: AsyncSession, tenant_id: str, account_id: str, key: str) -> PaymentOrder | None:
    row = (await session.execute(select(payment_orders).where(
        payment_orders.c.tenant_id == tenant_id, payment_orders.c.account_id == account_id,
        payment_orders.c.idempotency_key == key))).first()
    return None if row is None else _order(row)


async def orders_of(session: AsyncSession, tenant_id: str, account_id: str, limit: int) -> list[PaymentOrder]:
    """The account's orders, newest first."""
    rows = await session.execute(select(payment_orders).where(
        payment_orders.c.tenant_id == tenant_id, payment_orders.c.account_id == account_id).order_by(
        payment_orders.c.created_at.desc(), payment_orders.c.order_id.desc()).limit(limit))
    return [_order(row) for row in rows]


async def save_settled(session: AsyncSession, tenant_id: str, order: PaymentOrder) -> None:
    """Write what settling the order changed (in the transaction that credits its payment)."""
    await session.execute(update(payment_orders).where(
        payment_orders.c.tenant_id == tenant_id, payment_orders.c.order_id == order.order_id).values(
        state=order.state.value, paid_at=order.paid_at,
        payment_event_id=str(order.payment_event_id) if order.payment_event_id else None,
        provider_transaction_id=order.provider_transaction_id))
