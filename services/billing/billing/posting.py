"""Posting to an account: ledger events in, the balance state assessed, balance events out — one
transaction, one account at a time (an advisory lock per account keeps concurrent postings in order)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from amiflow_runtime.db import lock_for_transaction, lock_key, lock_many_for_transaction
from amiflow_schemas import Envelope, EventPayload
from amiflow_schemas.events.billing import DailySettled
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters import store
from billing.core.accounts import Account
from billing.core.balance_state import AVERAGE_OVER_DAYS, BalanceStatus, assess, average_daily_cost
from billing.core.periods import local_date

# Fixed forever: balance events caused by an input event take ids derived from it (see `assessed`).
BALANCE_NAMESPACE = uuid.UUID("7d4c2b1a-3e5f-4a6b-8c9d-0e1f2a3b4c5d")


async def lock_account(session: AsyncSession, tenant_id: str, account_id: str) -> None:
    """Serialise every posting and settlement of one account."""
    await lock_for_transaction(session, tenant_id, "account", account_id)


def account_lock_key(tenant_id: str, account_id: str) -> int:
    """The advisory lock key lock_account takes."""
    return lock_key(tenant_id, "account", account_id)


async def lock_accounts(session: AsyncSession, tenant_id: str, account_ids: Iterable[str]) -> None:
    """lock_account of many accounts in one statement, in account id order (room changes take several
    in that order too), so two such transactions cannot deadlock."""
    await lock_many_for_transaction(session, ((tenant_id, "account", a) for a in account_ids))


async def lock_accounts_of_tenants(session: AsyncSession, accounts: Iterable[tuple[str, str]]) -> None:
    """`lock_accounts` of (tenant, account) pairs of several tenants, in one statement and one order."""
    await lock_many_for_transaction(session, ((tenant_id, "account", a) for tenant_id, a in accounts))


async def post(session: AsyncSession, tenant_id: str, account: Account, payloads: Sequence[EventPayload],
               now: datetime, cause: Envelope[Any] | None = None,
               event_ids: Sequence[uuid.UUID] | None = None) -> list[Envelope[Any]]:
    """Append the payloads to the account's ledger and announce a change of its balance state.

    ``event_ids`` makes a posting deterministic where the caller needs it to be (a replayed input
    must produce the same ids); by default each event gets a fresh id.
    """
    ids = list(event_ids) if event_ids is not None else [uuid.uuid4() for _ in payloads]
    events = [store.envelope_of(p, tenant_id, account.account_id, now, i, cause) for p, i in zip(payloads, ids,
                                                                                             strict=True)]
    await store.emit(session, events, now)
    events += await assess_balance(session, tenant_id, account, now, cause)
    return events


async def assess_balance(session: AsyncSession, tenant_id: str, account: Account, now: datetime,
                         cause: Envelope[Any] | None = None) -> list[Envelope[Any]]:
    """Compare the balance with the account's thresholds and emit BalanceLow / Depleted / Restored on a change."""
    row = await store.balance_of(session, tenant_id, account.account_id)
    if row is None:
        return []
    first, last = averaged_days(now, account)
    recent = await store.settlements(session, tenant_id, account.account_id, first, last)
    status, events = assessed(tenant_id, account, row["status"], row["balance"], recent, now, cause)
    await store.emit(session, events, now)
    if not events and status.value != row["status"]:
        # Leaving low for normal has no event of its own (BalanceRestored means a depleted balance was
        # lifted, and cuts nothing back in): the state is kept so the next fall below the threshold
        # announces BalanceLow again.
        await store.set_balance_status(session, tenant_id, account.account_id, status)
    return events


def averaged_days(now: datetime, account: Account) -> tuple[date, date]:
    """The settlement days whose costs the low-balance threshold averages (from, to, inclusive)."""
    today = local_date(now, account.zone)
    return today - timedelta(days=AVERAGE_OVER_DAYS), today


def balance_events(tenant_id: str, account: Account, status: str, balance: Decimal,
                   recent: Iterable[DailySettled], now: datetime,
                   cause: Envelope[Any] | None = None) -> list[Envelope[Any]]:
    """The balance events of entering a new state, given the balance and the recent settlements."""
    return assessed(tenant_id, account, status, balance, recent, now, cause)[1]


def assessed(tenant_id: str, account: Account, status: str, balance: Decimal, recent: Iterable[DailySettled],
             now: datetime, cause: Envelope[Any] | None = None) -> tuple[BalanceStatus, list[Envelope[Any]]]:
    """The balance state after a change and the events of entering it.

    Caused by an input event (a reading), each balance event's id derives from the cause and its
    type: a redelivered reading, and the same reading applied in a batch or alone, announce the
    same ids.
    """
    verdict = assess(BalanceStatus(status), account, balance, average_daily_cost(recent, local_date(now, account.zone)),
                     now)
    return verdict.status, [store.envelope_of(p, tenant_id, account.account_id, now, _balance_event_id(
        tenant_id, account.account_id, p.EVENT_TYPE, cause), cause) for p in verdict.events]


def _balance_event_id(tenant_id: str, account_id: str, event_type: str, cause: Envelope[Any] | None) -> uuid.UUID:
    if cause is None:
        return uuid.uuid4()
    # The account too: one cause (a batch of recharges, say) may move several accounts' balances.
    return uuid.uuid5(BALANCE_NAMESPACE, f"{tenant_id}/{account_id}/{cause.event_id}/{event_type}")
