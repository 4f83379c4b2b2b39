"""Posting to an account: ledger events in, the balance state assessed, balance events out — one
transaction, one account at a time (an advisory lock per account keeps concurrent postings in order)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from amiflow_runtime.db import lock_for_transaction
from amiflow_schemas import Envelope, EventPayload
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters import store
from billing.core.accounts import Account
from billing.core.balance_state import AVERAGE_OVER_DAYS, BalanceStatus, assess, average_daily_cost
from billing.core.periods import local_date


async def lock_account(session: AsyncSession, tenant_id: str, account_id: str) -> None:
    """Serialise every posting and settlement of one account."""
    await lock_for_transaction(session, tenant_id, "account", account_id)


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
    today = local_date(now, account.zone)
    recent = await store.settlements(session, tenant_id, account.account_id,
                                     today - timedelta(days=AVERAGE_OVER_DAYS), today)
    verdict = assess(BalanceStatus(row["status"]), account, row["balance"], average_daily_cost(recent, today), now)
    events = [store.envelope_of(p, tenant_id, account.account_id, now, uuid.uuid4(), cause) for p in verdict.events]
    await store.emit(session, events, now)
    return events
