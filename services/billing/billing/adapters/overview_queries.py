"""Set-based reads for the operators' account list and overview: a page of accounts in one query, the
tenant's balances and a month of payments each in one query, no event decoded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from amiflow_schemas.events.billing import PaymentReceived
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters.directory import account_directory
from billing.adapters.store import account_balances, ledger_entries, meter_links
from billing.core.accounts import AccountStatus
from billing.core.balance_state import BalanceStatus
from billing.core.overview import AccountBalance, Collected

_HOLDER_AND_BALANCE = and_(account_balances.c.tenant_id == account_directory.c.tenant_id,
                           account_balances.c.account_id == account_directory.c.account_id)


@dataclass(frozen=True)
class AccountFilter:
    """What the account list is narrowed to; None leaves a criterion out."""

    prefix: str | None = None  # of the account id or the customer id, case-insensitive
    balance_state: BalanceStatus | None = None
    meter_id: str | None = None  # the account whose link to the meter has not ended
    after: str | None = None  # the last account id of the previous page


@dataclass(frozen=True)
class ListedAccount:
    account_id: str
    customer_id: str
    customer_kind: str
    status: str
    balance: Decimal
    currency: str
    balance_state: str
    updated_at: datetime


def _filtered(query: Select[Any], tenant_id: str, criteria: AccountFilter, now: datetime) -> Select[Any]:
    query = query.where(account_directory.c.tenant_id == tenant_id)
    if criteria.prefix:
        # substr, not LIKE: no wildcard in an id can widen the match, and both databases compare the same way.
        length, wanted = len(criteria.prefix), criteria.prefix.lower()
        query = query.where(or_(func.lower(func.substr(account_directory.c.account_id, 1, length)) == wanted,
                                func.lower(func.substr(account_directory.c.customer_id, 1, length)) == wanted))
    if criteria.balance_state is not None:
        query = query.where(account_balances.c.status == criteria.balance_state.value)
    if criteria.meter_id is not None:
        query = query.where(account_directory.c.account_id.in_(select(meter_links.c.account_id).where(
            meter_links.c.tenant_id == tenant_id, meter_links.c.meter_id == criteria.meter_id,
            or_(meter_links.c.unlinked_at.is_(None), meter_links.c.unlinked_at > now))))
    if criteria.after is not None:
        query = query.where(account_directory.c.account_id > criteria.after)
    return query


async def account_page(session: AsyncSession, tenant_id: str, criteria: AccountFilter, limit: int,
                       now: datetime) -> tuple[list[ListedAccount], str | None]:
    """Up to ``limit`` accounts in account id order, and the cursor of the next page (None on the last)."""
    query = select(account_directory.c.account_id, account_directory.c.customer_id,
                   account_directory.c.customer_kind, account_directory.c.status, account_balances.c.balance,
                   account_balances.c.currency, account_balances.c.status.label("balance_state"),
                   account_balances.c.updated_at).join(account_balances, _HOLDER_AND_BALANCE)
    rows = (await session.execute(_filtered(query, tenant_id, criteria, now).order_by(
        account_directory.c.account_id).limit(limit + 1))).all()
    page = [ListedAccount(**row._asdict()) for row in rows[:limit]]
    return page, (page[-1].account_id if len(rows) > limit else None)


async def balances(session: AsyncSession, tenant_id: str, currency: str) -> list[AccountBalance]:
    """Every account of the tenant kept in ``currency``: open or not, balance state, balance."""
    rows = await session.execute(select(account_directory.c.status, account_balances.c.status.label("state"),
                                        account_balances.c.balance).join(account_balances, _HOLDER_AND_BALANCE).where(
        account_directory.c.tenant_id == tenant_id, account_balances.c.currency == currency))
    return [AccountBalance(row.status == AccountStatus.OPEN.value, BalanceStatus(row.state), row.balance)
            for row in rows]


async def payments(session: AsyncSession, tenant_id: str, currency: str, first: date, last: date) -> list[Collected]:
    """Payments credited to accounts in ``currency`` on the local days first..last (the ledger's business days,
    as the daily-collections report counts them); a payment's effect on the balance is its amount."""
    rows = await session.execute(select(ledger_entries.c.business_day, ledger_entries.c.effect).join(
        account_balances, and_(account_balances.c.tenant_id == ledger_entries.c.tenant_id,
                               account_balances.c.account_id == ledger_entries.c.account_id)).where(
        ledger_entries.c.tenant_id == tenant_id, ledger_entries.c.event_type == PaymentReceived.EVENT_TYPE,
        ledger_entries.c.business_day >= first, ledger_entries.c.business_day <= last,
        account_balances.c.currency == currency))
    return [Collected(row.business_day, row.effect) for row in rows]
