"""Read queries of billing's API over the store's projections (store.py holds the writes and the fold)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any

from amiflow_schemas.events.billing import DailySettled
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters.store import (
    account_balances,
    daily_settlements,
    decoded,
    ledger_entries,
    meter_links,
    tariff_events,
)
from billing.core.ledger import LedgerEntry


@dataclass(frozen=True)
class DayEntry:
    """A ledger entry with the local day whose settlement counts it."""

    entry: LedgerEntry
    business_day: date


async def tariff_ids(session: AsyncSession, tenant_id: str) -> list[str]:
    """Every tariff the tenant has published, by id."""
    rows = await session.execute(select(tariff_events.c.tariff_id).distinct().where(
        tariff_events.c.tenant_id == tenant_id).order_by(tariff_events.c.tariff_id))
    return [str(r.tariff_id) for r in rows]


async def entries_by_day(session: AsyncSession, tenant_id: str, *, account_id: str | None = None,
                         first: date | None = None, last: date | None = None,
                         event_types: Collection[str] = ()) -> list[DayEntry]:
    """Ledger entries whose business day lies in [first, last], of one account or all, in recording order."""
    query = select(ledger_entries.c.envelope, ledger_entries.c.business_day).where(
        ledger_entries.c.tenant_id == tenant_id)
    if account_id is not None:
        query = query.where(ledger_entries.c.account_id == account_id)
    if first is not None:
        query = query.where(ledger_entries.c.business_day >= first)
    if last is not None:
        query = query.where(ledger_entries.c.business_day <= last)
    if event_types:
        query = query.where(ledger_entries.c.event_type.in_(list(event_types)))
    rows = await session.execute(query.order_by(ledger_entries.c.recorded_at, ledger_entries.c.event_id))
    found = []
    for row in rows:
        event = decoded(row.envelope)
        found.append(DayEntry(LedgerEntry(event.event_id, event.recorded_at, event.payload), row.business_day))
    return found


async def last_settlement_before(session: AsyncSession, tenant_id: str, account_id: str,
                                 day: date) -> DailySettled | None:
    """The account's latest DailySettled of a day before ``day``."""
    row = (await session.execute(select(daily_settlements.c.envelope).where(
        daily_settlements.c.tenant_id == tenant_id, daily_settlements.c.account_id == account_id,
        daily_settlements.c.settlement_date < day).order_by(daily_settlements.c.settlement_date.desc()).limit(1))
    ).first()
    if row is None:
        return None
    settled: DailySettled = decoded(row.envelope).payload
    return settled


async def balances_with_status(session: AsyncSession, tenant_id: str, status: str) -> list[dict[str, Any]]:
    """The balance rows of the tenant's accounts in one balance state, by account id."""
    rows = await session.execute(select(account_balances).where(
        account_balances.c.tenant_id == tenant_id, account_balances.c.status == status).order_by(
        account_balances.c.account_id))
    return [r._asdict() for r in rows]


async def links_of_meter(session: AsyncSession, tenant_id: str, meter_id: str) -> list[Any]:
    """Every account's link to the meter (account_id, linked_at, unlinked_at), oldest first."""
    rows = await session.execute(select(meter_links).where(
        meter_links.c.tenant_id == tenant_id, meter_links.c.meter_id == meter_id).order_by(meter_links.c.linked_at))
    return list(rows)
