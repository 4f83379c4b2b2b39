"""Billing's event store and the projections folded from it.

Every billing fact is an event (accounts, meter links, tariffs, the ledger, settlements, balance
states). `emit` applies events to the projections and stages them in the outbox in the caller's
transaction; `project` is the fold alone, so replaying the billing topics into an empty database
(`python -m billing.main rebuild`) reproduces every balance and settlement the live service holds.
Tables only rating needs (tier periods, rated readings) are decisions' working state, not projections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from amiflow_runtime.db import ExactDecimal, UtcDateTime, one_of
from amiflow_runtime.outbox import outbox_rows, stage
from amiflow_schemas import Envelope, EventPayload, decode_event, encode_event, new_envelope
from amiflow_schemas.events.accounts import (
    AccountClosed,
    AccountOpened,
    AccountSettingsChanged,
    MeterLinkedToAccount,
    MeterUnlinkedFromAccount,
)
from amiflow_schemas.events.billing import (
    BalanceDepleted,
    BalanceLow,
    BalanceRestored,
    DailySettled,
    PaymentReceived,
    SubsidyGranted,
)
from amiflow_schemas.events.tariffs import TariffPublished
from sqlalchemy import Column, Date, Integer, String, Table, Text, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters import directory
from billing.adapters.db import metadata, outbox
from billing.core import accounts as account_core
from billing.core import tariffs as tariff_core
from billing.core.accounts import Account
from billing.core.balance_state import BalanceStatus
from billing.core.ledger import LEDGER_TYPES, LedgerEntry, balance_effect, business_day
from billing.core.tariffs import Tariff

PRODUCER = "billing"
ACCOUNT_EVENTS = (AccountOpened, AccountSettingsChanged, AccountClosed, MeterLinkedToAccount, MeterUnlinkedFromAccount)
BALANCE_EVENTS = (BalanceLow, BalanceDepleted, BalanceRestored)
BALANCE_STATUS = {BalanceLow: BalanceStatus.LOW, BalanceDepleted: BalanceStatus.DEPLETED,
                  BalanceRestored: BalanceStatus.NORMAL}  # the state a balance event enters

# The events that make up each account's and tariff's state, in the order they were recorded.
account_events = Table(
    "account_events", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("account_id", String(64), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("envelope", Text, nullable=False),
)
tariff_events = Table(
    "tariff_events", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("tariff_id", String(64), nullable=False, index=True),
    Column("version_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("envelope", Text, nullable=False),
)
# Which account pays for a meter when: the lookup rating does for every reading.
meter_links = Table(
    "meter_links", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("meter_id", String(64), primary_key=True),
    Column("linked_at", UtcDateTime(), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("unlinked_at", UtcDateTime(), nullable=True),
)
ledger_entries = Table(
    "ledger_entries", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("business_day", Date, nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("effect", ExactDecimal(), nullable=False),  # on the balance: credit > 0
    Column("envelope", Text, nullable=False),
)
account_balances = Table(
    "account_balances", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("balance", ExactDecimal(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("time_zone", String(64), nullable=False),  # the account's: ledger entries' business days
    Column("settled_through", Date, nullable=True),  # the last settled local day
    Column("updated_at", UtcDateTime(), nullable=False),
)
daily_settlements = Table(
    "daily_settlements", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("settlement_date", Date, primary_key=True),
    Column("event_id", String(36), nullable=False),
    Column("closing_balance", ExactDecimal(), nullable=False),
    Column("envelope", Text, nullable=False),
)
# A provider's transaction and a batch line are credited once, whatever the retries.
payment_keys = Table(
    "payment_keys", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),  # "channel:txn" or "batch:<id>:<line>"
    Column("event_id", String(36), nullable=False),
    Column("account_id", String(64), nullable=False),
)


def decoded(text: str) -> Envelope[Any]:
    """A stored event, decoded (and upcast) as if it came off the topic."""
    return decode_event(text.encode())


def _key(tenant_id: str, table: Table, **match: Any) -> Any:
    return and_(table.c.tenant_id == tenant_id, *(table.c[name] == value for name, value in match.items()))


def envelope_of(payload: EventPayload, tenant_id: str, key: str, now: datetime, event_id: UUID,
                cause: Envelope[Any] | None = None) -> Envelope[Any]:
    """A billing event, tied to what caused it."""
    return new_envelope(payload, event_id=event_id, tenant_id=tenant_id, key=key, occurred_at=now, recorded_at=now,
                        producer=PRODUCER, correlation_id=cause.correlation_id if cause else None,
                        causation_id=cause.event_id if cause else None)


async def emit(session: AsyncSession, events: Sequence[Envelope[Any]], now: datetime) -> None:
    """Apply events to the projections and stage them for Kafka, in the caller's transaction."""
    await project_all(session, events)
    await stage(session, outbox, events, now)


async def project_all(session: AsyncSession, events: Sequence[Envelope[Any]]) -> None:
    """Fold events in order; a run of one account's ledger entries or settlements is written at once.

    A settlement catching up a month posts a fee and a settlement per day: one statement per run
    instead of three per event keeps a first settlement of thousands of accounts in minutes.
    """
    run: list[Envelope[Any]] = []
    for event in events:
        if run and _batch_of(run[0]) is not None and _batch_of(run[0]) == _batch_of(event):
            run.append(event)
            continue
        await _project_run(session, run)
        run = [event]
    await _project_run(session, run)


def _batch_of(event: Envelope[Any]) -> tuple[str, str, str] | None:
    payload = event.payload
    if isinstance(payload, LEDGER_TYPES):
        return "ledger", event.tenant_id, payload.account_id
    if isinstance(payload, DailySettled):
        return "settled", event.tenant_id, payload.account_id
    return None


async def _project_run(session: AsyncSession, run: Sequence[Envelope[Any]]) -> None:
    if not run:
        return
    if len(run) == 1:
        await project(session, run[0])
    elif isinstance(run[0].payload, DailySettled):
        await _project_settlements(session, run)
    else:
        await _project_ledger(session, run)


async def project(session: AsyncSession, event: Envelope[Any]) -> None:
    """Fold one billing event into the projections (the live path and the rebuild share it)."""
    payload, tenant = event.payload, event.tenant_id
    if isinstance(payload, ACCOUNT_EVENTS):
        await _project_account(session, event)
    elif isinstance(payload, TariffPublished):
        seq = await _next_seq(session, tariff_events, tenant, tariff_id=payload.tariff_id)
        await session.execute(insert(tariff_events).values(
            tenant_id=tenant, event_id=str(event.event_id), tariff_id=payload.tariff_id,
            version_id=payload.version_id, seq=seq, envelope=encode_event(event).decode()))
    elif isinstance(payload, LEDGER_TYPES):
        await _project_ledger(session, [event])
    elif isinstance(payload, DailySettled):
        await _project_settlements(session, [event])
    elif isinstance(payload, BALANCE_EVENTS):
        await session.execute(update(account_balances).where(
            _key(tenant, account_balances, account_id=payload.account_id)).values(
            status=BALANCE_STATUS[type(payload)].value))


async def _next_seq(session: AsyncSession, table: Table, tenant: str, **match: Any) -> int:
    current = (await session.execute(select(func.max(table.c.seq)).where(_key(tenant, table, **match)))).scalar()
    return (current or 0) + 1


async def _project_account(session: AsyncSession, event: Envelope[Any]) -> None:
    payload, tenant = event.payload, event.tenant_id
    seq = await _next_seq(session, account_events, tenant, account_id=payload.account_id)
    await session.execute(insert(account_events).values(
        tenant_id=tenant, event_id=str(event.event_id), account_id=payload.account_id, seq=seq,
        envelope=encode_event(event).decode()))
    await directory.project(session, tenant, payload)
    if isinstance(payload, AccountOpened):
        await session.execute(insert(account_balances).values(
            tenant_id=tenant, account_id=payload.account_id, balance=Decimal(0), status=BalanceStatus.NORMAL.value,
            currency=payload.currency, time_zone=payload.time_zone, settled_through=None,
            updated_at=payload.opened_at))
    elif isinstance(payload, MeterLinkedToAccount):
        await session.execute(insert(meter_links).values(
            tenant_id=tenant, meter_id=payload.meter_id, linked_at=payload.linked_at, account_id=payload.account_id,
            unlinked_at=None))
    elif isinstance(payload, MeterUnlinkedFromAccount):
        await session.execute(update(meter_links).where(
            _key(tenant, meter_links, meter_id=payload.meter_id, account_id=payload.account_id),
            meter_links.c.unlinked_at.is_(None)).values(unlinked_at=payload.unlinked_at))


async def _project_ledger(session: AsyncSession, events: Sequence[Envelope[Any]]) -> None:
    """Entries of one account, in order: appended, and the balance moved by their sum."""
    tenant, account_id = events[0].tenant_id, events[0].payload.account_id
    # The balance row carries the zone: no refold of the account's events for every entry.
    row = (await session.execute(select(account_balances.c.balance, account_balances.c.time_zone).where(
        _key(tenant, account_balances, account_id=account_id)))).first()
    if row is None:
        raise LookupError(f"ledger entry {events[0].event_id} for unknown account {account_id}")
    zone = ZoneInfo(row.time_zone)
    entries = [ledger_row(event, zone, encode_event(event).decode()) for event in events]
    await session.execute(insert(ledger_entries), entries)
    await session.execute(update(account_balances).where(
        _key(tenant, account_balances, account_id=account_id)).values(
        balance=row.balance + sum((e["effect"] for e in entries), Decimal(0)), updated_at=events[-1].recorded_at))
    keys = [key for event in events for key in _payment_key_rows(event)]
    if keys:
        await session.execute(insert(payment_keys), keys)


def ledger_row(event: Envelope[Any], zone: ZoneInfo, envelope: str) -> dict[str, Any]:
    """The ledger_entries row of a ledger event; ``envelope`` is its encoded text."""
    payload = event.payload
    return {"tenant_id": event.tenant_id, "event_id": str(event.event_id), "account_id": payload.account_id,
            "business_day": business_day(LedgerEntry(event.event_id, event.recorded_at, payload), zone),
            "recorded_at": event.recorded_at, "event_type": event.event_type, "effect": balance_effect(payload),
            "envelope": envelope}


def _payment_key_rows(event: Envelope[Any]) -> list[dict[str, Any]]:
    payload = event.payload
    if not isinstance(payload, PaymentReceived | SubsidyGranted):
        return []
    return [{"tenant_id": event.tenant_id, "key": key, "event_id": str(event.event_id),
             "account_id": payload.account_id} for key in payment_keys_of(payload)]


async def _project_settlements(session: AsyncSession, events: Sequence[Envelope[Any]]) -> None:
    """Settled days of one account, oldest first."""
    tenant, account_id = events[0].tenant_id, events[0].payload.account_id
    await session.execute(insert(daily_settlements), [_settlement_row(e, encode_event(e).decode()) for e in events])
    await session.execute(update(account_balances).where(
        _key(tenant, account_balances, account_id=account_id)).values(
        settled_through=max(e.payload.settlement_date for e in events)))


def _settlement_row(event: Envelope[Any], envelope: str) -> dict[str, Any]:
    payload = event.payload
    return {"tenant_id": event.tenant_id, "account_id": payload.account_id,
            "settlement_date": payload.settlement_date, "event_id": str(event.event_id),
            "closing_balance": payload.closing_balance, "envelope": envelope}


def payment_keys_of(payload: PaymentReceived | SubsidyGranted) -> list[str]:
    """The idempotency keys a credit claims: the provider's transaction, and its batch line if any."""
    keys = []
    if isinstance(payload, PaymentReceived):
        keys.append(f"{payload.channel.value}:{payload.provider_transaction_id}")
    batch_id, line = getattr(payload, "batch_id", None), getattr(payload, "line_number", None)
    if batch_id is not None and line is not None:
        keys.append(f"batch:{batch_id}:{line}")
    return keys


async def credited(session: AsyncSession, tenant_id: str, keys: Iterable[str]) -> Envelope[Any] | None:
    """The ledger event that already claimed one of these keys, if any."""
    wanted = list(keys)
    if not wanted:
        return None
    row = (await session.execute(select(payment_keys.c.event_id).where(
        payment_keys.c.tenant_id == tenant_id, payment_keys.c.key.in_(wanted)))).first()
    if row is None:
        return None
    return await ledger_event(session, tenant_id, row.event_id)


async def ledger_event(session: AsyncSession, tenant_id: str, event_id: str) -> Envelope[Any] | None:
    row = (await session.execute(select(ledger_entries.c.envelope).where(
        _key(tenant_id, ledger_entries, event_id=event_id)))).first()
    return None if row is None else decoded(row.envelope)


async def load_account(session: AsyncSession, tenant_id: str, account_id: str) -> Account | None:
    """The account folded from its events; None when it was never opened."""
    rows = await session.execute(select(account_events.c.envelope).where(
        _key(tenant_id, account_events, account_id=account_id)).order_by(account_events.c.seq))
    account = None
    for row in rows:
        account = account_core.evolve(account, decoded(row.envelope).payload)
    return account


async def load_tariff(session: AsyncSession, tenant_id: str, tariff_id: str) -> Tariff | None:
    rows = await session.execute(select(tariff_events.c.envelope).where(
        _key(tenant_id, tariff_events, tariff_id=tariff_id)).order_by(tariff_events.c.seq))
    tariff = None
    for row in rows:
        tariff = tariff_core.evolve(tariff, decoded(row.envelope).payload)
    return tariff


async def load_tariffs(session: AsyncSession, tenant_id: str, tariff_ids: Iterable[str]) -> dict[str, Tariff]:
    """`load_tariff` of each, in one query; tariffs never published are left out."""
    return await _folded(session, tariff_events, tariff_events.c.tariff_id, tenant_id, tariff_ids, tariff_core.evolve)


async def account_paying(session: AsyncSession, tenant_id: str, meter_id: str, at: datetime) -> str | None:
    """The account whose link to the meter is in force at ``at``."""
    row = (await session.execute(select(meter_links.c.account_id).where(
        _key(tenant_id, meter_links, meter_id=meter_id), meter_links.c.linked_at <= at,
        or_(meter_links.c.unlinked_at.is_(None), meter_links.c.unlinked_at > at)))).first()
    return None if row is None else str(row.account_id)


async def links_of_meters(session: AsyncSession, tenant_id: str,
                          meter_ids: Iterable[str]) -> dict[str, list[tuple[datetime, datetime | None, str]]]:
    """Every link of each meter as (linked_at, unlinked_at, account), oldest first: `account_paying`
    of many readings from one query (see `paying_at`)."""
    wanted = sorted(set(meter_ids))
    found: dict[str, list[tuple[datetime, datetime | None, str]]] = {meter_id: [] for meter_id in wanted}
    if not wanted:
        return found
    rows = await session.execute(select(meter_links).where(
        meter_links.c.tenant_id == tenant_id, one_of(session, meter_links.c.meter_id, wanted)).order_by(
        meter_links.c.meter_id, meter_links.c.linked_at))
    for row in rows:
        found[row.meter_id].append((row.linked_at, row.unlinked_at, str(row.account_id)))
    return found


def paying_at(links: Iterable[tuple[datetime, datetime | None, str]], at: datetime) -> str | None:
    """The account of the link in force at ``at`` among a meter's links (`links_of_meters`)."""
    for linked_at, unlinked_at, account_id in links:
        if linked_at <= at and (unlinked_at is None or unlinked_at > at):
            return account_id
    return None


async def set_balance_status(session: AsyncSession, tenant_id: str, account_id: str, status: BalanceStatus) -> None:
    """A change of state that has no event of its own (low back to normal)."""
    await session.execute(update(account_balances).where(
        _key(tenant_id, account_balances, account_id=account_id)).values(status=status.value))


async def write_postings(session: AsyncSession, ledger: Sequence[Mapping[str, Any]],
                         balances: Sequence[Mapping[str, Any]]) -> None:
    """Ledger rows (`ledger_row`) appended and balance rows (as read, then moved) written back, one
    statement each: what `emit` of a batch's charges and balance events leaves."""
    if ledger:
        await session.execute(insert(ledger_entries), list(ledger))
    if balances:  # executemany: one prepared statement
        await session.execute(update(account_balances).where(
            account_balances.c.tenant_id == bindparam("_tenant"),
            account_balances.c.account_id == bindparam("_account")), [
            {"_tenant": row["tenant_id"], "_account": row["account_id"], "balance": row["balance"],
             "status": row["status"], "updated_at": row["updated_at"]} for row in balances])


async def balance_of(session: AsyncSession, tenant_id: str, account_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(account_balances).where(
        _key(tenant_id, account_balances, account_id=account_id)))).first()
    return None if row is None else row._asdict()


async def entries_of_day(session: AsyncSession, tenant_id: str, account_id: str, day: date) -> list[LedgerEntry]:
    return (await entries_of_days(session, tenant_id, account_id, day, day)).get(day, [])


async def entries_of_days(session: AsyncSession, tenant_id: str, account_id: str, first: date,
                          last: date) -> dict[date, list[LedgerEntry]]:
    """The account's entries by business day, first..last inclusive, each day in recording order."""
    rows = await session.execute(select(ledger_entries.c.business_day, ledger_entries.c.envelope).where(
        _key(tenant_id, ledger_entries, account_id=account_id), ledger_entries.c.business_day >= first,
        ledger_entries.c.business_day <= last).order_by(
        ledger_entries.c.business_day, ledger_entries.c.recorded_at, ledger_entries.c.event_id))
    found: dict[date, list[LedgerEntry]] = {}
    for row in rows:
        event = decoded(row.envelope)
        found.setdefault(row.business_day, []).append(LedgerEntry(event.event_id, event.recorded_at, event.payload))
    return found


async def ledger(session: AsyncSession, tenant_id: str, account_id: str, since: datetime | None = None,
                 until: datetime | None = None, limit: int = 1000) -> list[Envelope[Any]]:
    """The account's ledger events in recording order."""
    query = select(ledger_entries.c.envelope).where(_key(tenant_id, ledger_entries, account_id=account_id))
    if since is not None:
        query = query.where(ledger_entries.c.recorded_at >= since)
    if until is not None:
        query = query.where(ledger_entries.c.recorded_at < until)
    rows = await session.execute(query.order_by(ledger_entries.c.recorded_at, ledger_entries.c.event_id).limit(limit))
    return [decoded(r.envelope) for r in rows]


async def settlements(session: AsyncSession, tenant_id: str, account_id: str, first: date | None = None,
                      last: date | None = None) -> list[DailySettled]:
    query = select(daily_settlements.c.envelope).where(_key(tenant_id, daily_settlements, account_id=account_id))
    if first is not None:
        query = query.where(daily_settlements.c.settlement_date >= first)
    if last is not None:
        query = query.where(daily_settlements.c.settlement_date <= last)
    rows = await session.execute(query.order_by(daily_settlements.c.settlement_date))
    return [decoded(r.envelope).payload for r in rows]


async def accounts_of(session: AsyncSession, tenant_id: str | None = None) -> list[tuple[str, str]]:
    """(tenant, account) of every account with a balance row, for the settlement job."""
    query = select(account_balances.c.tenant_id, account_balances.c.account_id)
    if tenant_id is not None:
        query = query.where(account_balances.c.tenant_id == tenant_id)
    return [(r.tenant_id, r.account_id) for r in await session.execute(query.order_by(
        account_balances.c.tenant_id, account_balances.c.account_id))]


# Set-based variants for the settlement job: a chunk of accounts read and written in a few statements.

async def accounts_to_settle(session: AsyncSession, last_closed: Callable[[ZoneInfo], date]) -> list[tuple[str, str]]:
    """(tenant, account) of every account whose balance row is not settled through its zone's last closed day.

    A superset of the accounts with a day to settle (a closed account stays in it), so the job skips
    the others without loading them: a pass over a million settled accounts costs one query.
    """
    zones = (await session.execute(select(account_balances.c.time_zone).distinct())).scalars().all()
    behind = [and_(account_balances.c.time_zone == zone, or_(account_balances.c.settled_through.is_(None),
                                                            account_balances.c.settled_through < last_closed(
                                                                ZoneInfo(zone)))) for zone in zones]
    if not behind:
        return []
    rows = await session.execute(select(account_balances.c.tenant_id, account_balances.c.account_id).where(
        or_(*behind)).order_by(account_balances.c.tenant_id, account_balances.c.account_id))
    return [(r.tenant_id, r.account_id) for r in rows]


async def load_accounts(session: AsyncSession, tenant_id: str, account_ids: Sequence[str]) -> dict[str, Account]:
    """`load_account` of each; accounts never opened are left out."""
    return await _folded(session, account_events, account_events.c.account_id, tenant_id, account_ids,
                         account_core.evolve)


async def _folded(session: AsyncSession, events: Table, key: Any, tenant_id: str, ids: Iterable[str],
                  evolve: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """Each id's stored events folded in order, in one query; ids without events are left out."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(select(key.label("id"), events.c.envelope).where(
        events.c.tenant_id == tenant_id, one_of(session, key, wanted)).order_by(key, events.c.seq))
    found: dict[str, Any] = {}
    for row in rows.all():
        found[row.id] = evolve(found.get(row.id), decoded(row.envelope).payload)
    return found


async def balances_of(session: AsyncSession, tenant_id: str, account_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = await session.execute(select(account_balances).where(
        account_balances.c.tenant_id == tenant_id, one_of(session, account_balances.c.account_id, account_ids)))
    return {row.account_id: row._asdict() for row in rows}


async def entries_of_accounts(session: AsyncSession, tenant_id: str,
                              spans: Mapping[str, tuple[date, date]]) -> dict[str, dict[date, list[LedgerEntry]]]:
    """`entries_of_days` of each account over its own (first, last) days."""
    if not spans:
        return {}
    rows = await session.execute(select(
        ledger_entries.c.account_id, ledger_entries.c.business_day, ledger_entries.c.envelope).where(
        ledger_entries.c.tenant_id == tenant_id, one_of(session, ledger_entries.c.account_id, spans),
        ledger_entries.c.business_day >= min(first for first, _ in spans.values()),
        ledger_entries.c.business_day <= max(last for _, last in spans.values())).order_by(
        ledger_entries.c.account_id, ledger_entries.c.business_day, ledger_entries.c.recorded_at,
        ledger_entries.c.event_id))
    found: dict[str, dict[date, list[LedgerEntry]]] = {account_id: {} for account_id in spans}
    for row in rows.all():
        first, last = spans[row.account_id]
        if first <= row.business_day <= last:
            event = decoded(row.envelope)
            found[row.account_id].setdefault(row.business_day, []).append(
                LedgerEntry(event.event_id, event.recorded_at, event.payload))
    return found


async def settlements_of_accounts(session: AsyncSession, tenant_id: str, account_ids: Sequence[str], first: date,
                                  last: date) -> dict[str, list[DailySettled]]:
    """`settlements` of each account from first to last, oldest first."""
    rows = await session.execute(select(daily_settlements.c.account_id, daily_settlements.c.envelope).where(
        daily_settlements.c.tenant_id == tenant_id, one_of(session, daily_settlements.c.account_id, account_ids),
        daily_settlements.c.settlement_date >= first, daily_settlements.c.settlement_date <= last).order_by(
        daily_settlements.c.account_id, daily_settlements.c.settlement_date))
    found: dict[str, list[DailySettled]] = {}
    for row in rows.all():
        found.setdefault(row.account_id, []).append(decoded(row.envelope).payload)
    return found


async def last_settlements(session: AsyncSession, tenant_id: str,
                           account_ids: Sequence[str]) -> dict[str, DailySettled]:
    """Each account's settlement of its settled_through day."""
    rows = await session.execute(select(daily_settlements.c.account_id, daily_settlements.c.envelope).join(
        account_balances, and_(account_balances.c.tenant_id == daily_settlements.c.tenant_id,
                               account_balances.c.account_id == daily_settlements.c.account_id,
                               account_balances.c.settled_through == daily_settlements.c.settlement_date)).where(
        daily_settlements.c.tenant_id == tenant_id, one_of(session, daily_settlements.c.account_id, account_ids)))
    return {row.account_id: decoded(row.envelope).payload for row in rows.all()}


async def emit_many(session: AsyncSession, events: Sequence[Envelope[Any]], balances: Mapping[str, Mapping[str, Any]],
                    now: datetime) -> None:
    """`emit` of many accounts' ledger entries, balance states and settlements, in a few statements.

    ``balances`` are the accounts' balance rows as read under their locks (one tenant's); each row is
    written once with what the events do to it, as `project` would have left it event by event.
    """
    staged = outbox_rows(events, now)  # each event encoded once: the outbox's bytes are the stored text
    ledger: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    settled: list[dict[str, Any]] = []
    changes: dict[str, dict[str, Any]] = {}
    for event, row in zip(events, staged, strict=True):
        payload, text = event.payload, row["message_value"].decode()
        account = changes.setdefault(payload.account_id, dict(balances[payload.account_id]))
        if isinstance(payload, LEDGER_TYPES):
            ledger.append(ledger_row(event, ZoneInfo(account["time_zone"]), text))
            keys += _payment_key_rows(event)
            account["balance"] += ledger[-1]["effect"]
            account["updated_at"] = event.recorded_at
        elif isinstance(payload, DailySettled):
            settled.append(_settlement_row(event, text))
            account["settled_through"] = max(account["settled_through"] or payload.settlement_date,
                                             payload.settlement_date)
        elif isinstance(payload, BALANCE_EVENTS):
            account["status"] = BALANCE_STATUS[type(payload)].value
        else:
            raise TypeError(f"emit_many takes ledger, balance and settlement events, not {event.event_type}")
    for table, rows in ((ledger_entries, ledger), (payment_keys, keys), (daily_settlements, settled)):
        if rows:
            await session.execute(insert(table), rows)
    if changes:  # executemany: SET takes the columns each parameter set names
        await session.execute(update(account_balances).where(
            account_balances.c.tenant_id == bindparam("_tenant"),
            account_balances.c.account_id == bindparam("_account")), [
            {"_tenant": row["tenant_id"], "_account": account_id, "balance": row["balance"], "status": row["status"],
             "settled_through": row["settled_through"], "updated_at": row["updated_at"]}
            for account_id, row in changes.items()])
    if staged:
        await session.execute(insert(outbox), staged)
