"""The daily settlement job: every account's closed local days, in order, exactly once.

A day is settled once it ended `delay` ago in the account's zone (postings still in flight across
midnight land first). Its fixed and recurring charges are posted, then DailySettled; both carry ids
derived from (tenant, account, day), and the settlement's row is unique per (account, date), so a
re-run or a second worker instance cannot settle a day twice. Readings held because no account paid
for their meter are rated as soon as one does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from amiflow_runtime.clock import Clock
from amiflow_runtime.outbox import stage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import posting
from billing.adapters import rating_db, store
from billing.adapters.db import outbox
from billing.app import rate
from billing.core.periods import local_date
from billing.core.settlement import close_day

SETTLEMENT_NAMESPACE = uuid.UUID("5d0c2f4e-7a8b-4c1d-9e2f-3a4b5c6d7e8f")


async def settle_all(sessions: Any, clock: Clock, wake_relay: Callable[[], None], delay: timedelta,
                     concurrency: int = 1) -> int:
    """Settle every account's closed days and rate newly payable held readings; returns days settled.

    Accounts are independent (one transaction and one lock each), so ``concurrency`` of them may be
    settled at once: a tenant of a hundred thousand accounts closes its day in minutes, not an hour.
    """
    async with sessions() as session:
        accounts = await store.accounts_of(session)
        held = (await session.execute(select(rating_db.unbilled_readings.c.tenant_id,
                                             rating_db.unbilled_readings.c.meter_id).distinct())).all()
    for tenant, meter_id in held:
        async with sessions() as session, session.begin():
            await rate_released(session, tenant, meter_id, clock.now())
    queue = iter(accounts)

    async def lane() -> int:  # takes the next account until none is left
        days = 0
        for tenant, account_id in queue:
            async with sessions() as session, session.begin():
                days += await settle_account(session, tenant, account_id, clock.now(), delay)
        return days

    settled = sum(await asyncio.gather(*(lane() for _ in range(concurrency))))
    if settled or held:
        wake_relay()
    return settled


async def rate_released(session: AsyncSession, tenant_id: str, meter_id: str, now: datetime) -> None:
    """Rate a meter's held readings once an account pays for it; still unpaid ones stay held."""
    for raw in await rating_db.release(session, tenant_id, meter_id):
        envelope = store.decoded(raw)
        if await store.account_paying(session, tenant_id, meter_id, envelope.payload.measured_at) is None:
            await rating_db.hold(session, tenant_id, str(envelope.event_id), meter_id, envelope.payload.measured_at,
                                 f"no account pays for meter {meter_id}", raw, now)
            continue
        await stage(session, outbox, await rate(session, envelope, now), now)


def days_to_settle(settled_through: date | None, opened_on: date, now: datetime, zone: Any,
                   delay: timedelta) -> list[date]:
    """The closed local days after the last settled one (from the opening day), oldest first."""
    last = local_date(now - delay, zone) - timedelta(days=1)
    first = settled_through + timedelta(days=1) if settled_through else opened_on
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


async def settle_account(session: AsyncSession, tenant_id: str, account_id: str, now: datetime,
                         delay: timedelta) -> int:
    await posting.lock_account(session, tenant_id, account_id)
    account = await store.load_account(session, tenant_id, account_id)
    row = await store.balance_of(session, tenant_id, account_id)
    if account is None or row is None:
        return 0
    days = days_to_settle(row["settled_through"], local_date(account.opened_at, account.zone), now, account.zone,
                          delay)
    if account.closed_at is not None:
        days = [d for d in days if d <= local_date(account.closed_at, account.zone)]
    previous = await store.settlements(session, tenant_id, account_id, row["settled_through"],
                                       row["settled_through"]) if row["settled_through"] else []
    opening = previous[-1].closing_balance if previous else Decimal(0)
    if not days:
        return 0
    tariffs = await store.load_tariffs(session, tenant_id, {link.tariff_id for link in account.links})
    # A day's own postings belong to that day, so the days can be closed in one pass over the ledger
    # and written together: every posting of the run first, then the settlements that count them.
    entries = await store.entries_of_days(session, tenant_id, account_id, days[0], days[-1])
    postings: list[Any] = []
    ids: list[uuid.UUID] = []
    settled = []
    for day in days:
        closing = close_day(account, tariffs, day, opening, entries.get(day, []))
        postings += closing.postings
        ids += [_day_id(tenant_id, account_id, day, f"posting-{n}") for n in range(len(closing.postings))]
        settled.append(store.envelope_of(closing.settlement, tenant_id, account_id, now,
                                         _day_id(tenant_id, account_id, day, "settled")))
        opening = closing.settlement.closing_balance
    await posting.post(session, tenant_id, account, postings, now, None, ids)
    await store.emit(session, settled, now)
    return len(days)


def _day_id(tenant_id: str, account_id: str, day: date, what: str) -> uuid.UUID:
    return uuid.uuid5(SETTLEMENT_NAMESPACE, f"{tenant_id}/{account_id}/{day.isoformat()}/{what}")
