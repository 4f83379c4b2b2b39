"""The account directory: who holds each account and whether it is open, as columns an operator's search and
list can filter and page on (the account itself is the fold of its events, which no query can filter).

A projection like the balances: `store.project` keeps it from AccountOpened and AccountClosed, so the
rebuild from the topics restores it; migration 0004 filled it from the stored account events.
"""

from __future__ import annotations

from typing import Any

from amiflow_runtime.db import UtcDateTime
from amiflow_schemas.events.accounts import AccountClosed, AccountOpened
from sqlalchemy import Column, Index, String, Table, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters.db import metadata
from billing.core.accounts import AccountStatus

account_directory = Table(
    "account_directory", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("customer_kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # open or closed
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    Index("account_directory_by_customer", "tenant_id", "customer_id"),
)


async def project(session: AsyncSession, tenant_id: str, payload: Any) -> None:
    """Fold an account lifecycle event into the directory (others leave it as it is)."""
    if isinstance(payload, AccountOpened):
        await session.execute(insert(account_directory).values(
            tenant_id=tenant_id, account_id=payload.account_id, customer_id=payload.customer_id,
            customer_kind=payload.customer_kind.value, status=AccountStatus.OPEN.value, opened_at=payload.opened_at,
            closed_at=None))
    elif isinstance(payload, AccountClosed):
        await session.execute(update(account_directory).where(
            account_directory.c.tenant_id == tenant_id, account_directory.c.account_id == payload.account_id).values(
            status=AccountStatus.CLOSED.value, closed_at=payload.closed_at))
