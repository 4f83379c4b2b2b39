"""The daily settlement job: every account's closed local days, in order, exactly once.

A day is settled once it ended `delay` ago in the account's zone (postings still in flight across
midnight land first). Its fixed and recurring charges are posted, then DailySettled; both carry ids
derived from (tenant, account, day), and the settlement's row is unique per (account, date), so a
re-run or a second worker instance cannot settle a day twice. Readings held because no account paid
for their meter are rated as soon as one does.

Accounts are settled in chunks, one transaction each: the chunk's accounts are locked (as a posting
locks one), read with a few set-based queries, closed day by day by the pure core, and written with
a few bulk statements. A commit waits for its WAL flush, so a transaction per account would cap a
durable server at a few hundred accounts a second whatever the code did.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import groupby
from typing import Any

from amiflow_runtime.clock import Clock
from amiflow_runtime.outbox import OUTAGES, stage
from amiflow_runtime.pipeline import is_transient
from amiflow_schemas import Envelope
from amiflow_schemas.events.billing import DailySettled
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import posting
from billing.adapters import rating_db, store
from billing.adapters.db import outbox
from billing.app import rate
from billing.core.accounts import Account
from billing.core.ledger import LedgerEntry, balance_effect
from billing.core.periods import local_date
from billing.core.settlement import close_day
from billing.core.tariffs import Tariff

log = logging.getLogger("billing.settlement")
SETTLEMENT_NAMESPACE = uuid.UUID("5d0c2f4e-7a8b-4c1d-9e2f-3a4b5c6d7e8f")
# Accounts per transaction. Each holds an advisory lock until commit, and PostgreSQL's shared lock table
# has room for max_locks_per_transaction x max_connections (64 x 100 by default) of them, for every
# session together: chunk x concurrency must stay well below that.
CHUNK_ACCOUNTS = 500
CHUNK_ATTEMPTS = 3  # a chunk that deadlocked, or met a brief outage, is tried again this often


async def settle_all(sessions: Any, clock: Clock, wake_relay: Callable[[], None], delay: timedelta,
                     concurrency: int = 1, chunk_accounts: int = CHUNK_ACCOUNTS) -> int:
    """Settle every account's closed days and rate newly payable held readings; returns days settled.

    Chunks are independent (one transaction each), so ``concurrency`` of them may be settled at once:
    while one waits for PostgreSQL, the next is computed.
    """
    now = clock.now()
    async with sessions() as session:
        due = await store.accounts_to_settle(session, lambda zone: last_closed_day(now, zone, delay))
        held = (await session.execute(select(rating_db.unbilled_readings.c.tenant_id,
                                             rating_db.unbilled_readings.c.meter_id).distinct())).all()
    for tenant, meter_id in held:
        async with sessions() as session, session.begin():
            await rate_released(session, tenant, meter_id, clock.now())
    queue = iter(chunks(due, chunk_accounts))

    async def lane() -> int:  # takes the next chunk until none is left
        days = 0
        for tenant, account_ids in queue:
            settled = await _settle_chunk(sessions, tenant, account_ids, clock, delay)
            if settled:
                wake_relay()  # the relay publishes this chunk while the next one is settled
            days += settled
        return days

    try:
        async with asyncio.TaskGroup() as lanes:  # an outage in one lane stops the others
            running = [lanes.create_task(lane()) for _ in range(concurrency)]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the first lane's error, as one lane alone would raise it
    if held:
        wake_relay()
    return sum(task.result() for task in running)


def chunks(accounts: Sequence[tuple[str, str]], size: int) -> list[tuple[str, list[str]]]:
    """(tenant, up to ``size`` account ids) in the order given; a chunk never mixes tenants."""
    found = []
    for tenant, of_tenant in groupby(accounts, key=lambda pair: pair[0]):
        ids = [account_id for _, account_id in of_tenant]
        found += [(tenant, ids[n:n + size]) for n in range(0, len(ids), size)]
    return found


async def _settle_chunk(sessions: Any, tenant_id: str, account_ids: list[str], clock: Clock,
                        delay: timedelta) -> int:
    try:
        return await _settle_in_one_transaction(sessions, tenant_id, account_ids, clock, delay)
    except OUTAGES:
        raise  # the database or broker is away: the next pass starts over
    except Exception:
        if len(account_ids) == 1:
            log.exception("settlement of account %s of tenant %s failed; the next pass tries again",
                          account_ids[0], tenant_id)
            return 0
        log.warning("a chunk of %d accounts of tenant %s failed; settling them one by one", len(account_ids),
                    tenant_id)
    # One account the core refuses must not hold back the others of its chunk: each on its own.
    days, failed = 0, []
    for account_id in account_ids:
        try:
            days += await _settle_in_one_transaction(sessions, tenant_id, [account_id], clock, delay)
        except OUTAGES:
            raise
        except Exception:
            log.exception("settlement of account %s of tenant %s failed; the next pass tries again", account_id,
                          tenant_id)
            failed.append(account_id)
    if len(failed) == len(account_ids):  # not an account's data: stop rather than log every account
        raise RuntimeError(f"every account of a chunk of tenant {tenant_id} failed to settle; see the log")
    return days


async def _settle_in_one_transaction(sessions: Any, tenant_id: str, account_ids: list[str], clock: Clock,
                                     delay: timedelta) -> int:
    attempt = 1
    while True:
        try:
            async with sessions() as session, session.begin():
                return await settle_accounts(session, tenant_id, account_ids, clock.now(), delay)
        except Exception as exc:
            # A worker's batch of readings locks accounts in the order they came: PostgreSQL breaks the
            # deadlock with a chunk by aborting one, and the chunk, rolled back whole, simply goes again.
            if attempt == CHUNK_ATTEMPTS or not is_transient(exc):
                raise
            log.warning("settling %d accounts of tenant %s failed (%s); retrying", len(account_ids), tenant_id, exc)
        await asyncio.sleep(0.1 * 2**attempt)
        attempt += 1


async def rate_released(session: AsyncSession, tenant_id: str, meter_id: str, now: datetime) -> None:
    """Rate a meter's held readings once an account pays for it; still unpaid ones stay held."""
    for raw in await rating_db.release(session, tenant_id, meter_id):
        envelope = store.decoded(raw)
        if await store.account_paying(session, tenant_id, meter_id, envelope.payload.measured_at) is None:
            await rating_db.hold(session, tenant_id, str(envelope.event_id), meter_id, envelope.payload.measured_at,
                                 f"no account pays for meter {meter_id}", raw, now)
            continue
        await stage(session, outbox, await rate(session, envelope, now), now)


def last_closed_day(now: datetime, zone: Any, delay: timedelta) -> date:
    """The last local day that ended ``delay`` ago or earlier."""
    return local_date(now - delay, zone) - timedelta(days=1)


def days_to_settle(settled_through: date | None, opened_on: date, now: datetime, zone: Any,
                   delay: timedelta) -> list[date]:
    """The closed local days after the last settled one (from the opening day), oldest first."""
    last = last_closed_day(now, zone, delay)
    first = settled_through + timedelta(days=1) if settled_through else opened_on
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@dataclass(frozen=True)
class Due:
    """An account with days to settle, as read under its lock."""

    account: Account
    balance: dict[str, Any]  # its account_balances row
    days: list[date]


async def settle_account(session: AsyncSession, tenant_id: str, account_id: str, now: datetime,
                         delay: timedelta) -> int:
    """Settle one account's closed days (a chunk of one)."""
    return await settle_accounts(session, tenant_id, [account_id], now, delay)


async def settle_accounts(session: AsyncSession, tenant_id: str, account_ids: Sequence[str], now: datetime,
                          delay: timedelta) -> int:
    """Settle the closed days of some accounts of one tenant in the caller's transaction; returns days settled."""
    ids = sorted(set(account_ids))
    await posting.lock_accounts(session, tenant_id, ids)
    due = _due(await store.load_accounts(session, tenant_id, ids), await store.balances_of(session, tenant_id, ids),
               now, delay)
    if not due:
        return 0
    due_ids = list(due)
    tariffs = await store.load_tariffs(session, tenant_id, {link.tariff_id for d in due.values()
                                                           for link in d.account.links})
    entries = await store.entries_of_accounts(session, tenant_id, {i: (d.days[0], d.days[-1]) for i, d in due.items()})
    # The settlements the low-balance threshold averages, as they stand before this transaction writes
    # any (a posting's assessment sees the same); the last settled day is usually among them.
    windows = [posting.averaged_days(now, d.account) for d in due.values()]
    recent = await store.settlements_of_accounts(session, tenant_id, due_ids, min(w[0] for w in windows),
                                                 max(w[1] for w in windows))
    openings = await _openings(session, tenant_id, due, recent)
    events: list[Envelope[Any]] = []
    for account_id, d in due.items():
        events += _closed_days(tenant_id, d, openings[account_id], tariffs, entries.get(account_id, {}),
                               recent.get(account_id, []), now)
    await store.emit_many(session, events, {i: d.balance for i, d in due.items()}, now)
    return sum(len(d.days) for d in due.values())


async def _openings(session: AsyncSession, tenant_id: str, due: dict[str, Due],
                    recent: dict[str, list[DailySettled]]) -> dict[str, Decimal]:
    """Each account's balance opening its first day to settle: its last settlement's closing, else zero."""
    found, elsewhere = {}, []
    for account_id, d in due.items():
        last = d.balance["settled_through"]
        settled = next((s for s in recent.get(account_id, []) if s.settlement_date == last), None)
        if last is not None and settled is None:
            elsewhere.append(account_id)
        found[account_id] = settled.closing_balance if settled else Decimal(0)
    if elsewhere:  # settled before the averaged week
        older = await store.last_settlements(session, tenant_id, elsewhere)
        found |= {account_id: settled.closing_balance for account_id, settled in older.items()}
    return found


def _due(accounts: dict[str, Account], balances: dict[str, dict[str, Any]], now: datetime,
         delay: timedelta) -> dict[str, Due]:
    """The accounts with closed days to settle; a closed account's stop at its closing day."""
    found = {}
    for account_id, account in accounts.items():
        row = balances.get(account_id)
        if row is None:
            continue
        days = days_to_settle(row["settled_through"], local_date(account.opened_at, account.zone), now, account.zone,
                              delay)
        if account.closed_at is not None:
            days = [d for d in days if d <= local_date(account.closed_at, account.zone)]
        if days:
            found[account_id] = Due(account, row, days)
    return found


def _closed_days(tenant_id: str, due: Due, opening: Decimal, tariffs: dict[str, Tariff],
                 entries: dict[date, list[LedgerEntry]], recent: list[DailySettled], now: datetime,
                 ) -> list[Envelope[Any]]:
    """One account's events: every day's postings, the balance events they cause, then the settlements.

    A day's own postings belong to that day, so the days close in one pass over the ledger; the
    settlements follow the postings that count them, as they would one account at a time.
    """
    account, account_id = due.account, due.account.account_id
    postings: list[Envelope[Any]] = []
    settled: list[Envelope[Any]] = []
    for day in due.days:
        closing = close_day(account, tariffs, day, opening, entries.get(day, []))
        postings += [store.envelope_of(p, tenant_id, account_id, now, day_event_id(tenant_id, account_id, day,
                                                                                    f"posting-{n}"))
                     for n, p in enumerate(closing.postings)]
        settled.append(store.envelope_of(closing.settlement, tenant_id, account_id, now,
                                         day_event_id(tenant_id, account_id, day, "settled")))
        opening = closing.settlement.closing_balance
    balance = due.balance["balance"] + sum((balance_effect(e.payload) for e in postings), Decimal(0))
    assessed = posting.balance_events(tenant_id, account, due.balance["status"], balance, recent, now)
    return [*postings, *assessed, *settled]


def day_event_id(tenant_id: str, account_id: str, day: date, what: str) -> uuid.UUID:
    """The id of a settlement's event: the same on every run, so a day cannot be settled twice."""
    return uuid.uuid5(SETTLEMENT_NAMESPACE, f"{tenant_id}/{account_id}/{day.isoformat()}/{what}")

