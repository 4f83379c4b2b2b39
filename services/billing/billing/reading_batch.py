"""Billing's reading handler for a whole consumed batch: set-based reads before, multi-row writes after.

`reading_handler` (billing.app) rates one reading with ~14 statements. Here the batch's scope
(amiflow_runtime.pipeline `BatchHandler`) reads what all of its readings need in a few queries —
the meters' consumption totals, the links saying who pays, the accounts locked in sorted order in
one statement, the accounts, their balances, recent settlements and tariffs, the tier period
states — and each reading is then rated in memory, against what the readings before it in the
batch left (several readings of one account chain: the second sees the first's periods and
balance). After the last one the scope writes back: tier periods and consumption totals upserted,
rated and held readings, ledger entries, balances and the outbox inserted, one statement each.

The events are those `reading_handler` makes, with the same ids, in the same order, with the same
content; only the statements differ. A correction of a rated reading is rare and needs the rating
history: what the batch gathered so far is written first and the correction goes the one-reading
way (`rerate_found`), after which the account's cached state is read again. Anything the scope did
not read ahead (an account met only then) is read when first needed, under its lock.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from amiflow_runtime.clock import Clock
from amiflow_runtime.outbox import outbox_rows
from amiflow_runtime.pipeline import BatchHandler, Handler, Rejected
from amiflow_schemas import Envelope
from amiflow_schemas.events.billing import DailySettled
from amiflow_schemas.events.readings import ReadingCorrected, ReadingValidated
from sqlalchemy.ext.asyncio import AsyncSession

from billing import posting
from billing.adapters import db, rating_db, store
from billing.app import CHARGE_NAMESPACE, held, rerate_found, unbilled_alarm
from billing.core.accounts import Account
from billing.core.consumption import MeterConsumption, UnitMismatch, evolve
from billing.core.ledger import balance_effect
from billing.core.rating import MeterReading, RatingError, TierPeriodState, periods_of, rate_reading, reading_of
from billing.core.tariffs import Tariff

AccountKey = tuple[str, str]  # (tenant, account)
PeriodKey = tuple[str, str, str, datetime]  # (tenant, account, tariff, period start)


def reading_batch_handler(clock: Clock) -> BatchHandler:
    """`reading_handler` for a whole batch (see the module docstring)."""

    @asynccontextmanager
    async def scope(session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> AsyncIterator[Handler]:
        batch = ReadingBatch(session, clock)
        await batch.prepare(envelopes)
        yield batch.handle
        await batch.write_back()  # not reached when a handler raised: the pipeline rolls the batch back

    return BatchHandler(scope)


def _reading(envelope: Envelope[Any]) -> MeterReading | None:
    try:
        return reading_of(envelope.event_id, envelope.payload)
    except RatingError:
        return None  # raised again when the event is handled, as the one-reading way does


class ReadingBatch:
    """What a batch's readings read and write, kept in memory between its scope's start and end."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session, self.clock = session, clock
        self.dialect = session.get_bind().dialect.name
        self.consumption: dict[tuple[str, str], MeterConsumption | None] = {}
        self.links: dict[tuple[str, str], list[tuple[datetime, datetime | None, str]]] = {}
        self.locked: set[AccountKey] = set()
        self.accounts: dict[AccountKey, Account | None] = {}
        self.balances: dict[AccountKey, dict[str, Any] | None] = {}
        self.recent: dict[AccountKey, list[DailySettled]] = {}
        self.tariffs: dict[tuple[str, str], Tariff | None] = {}
        self.periods: dict[PeriodKey, TierPeriodState | None] = {}  # None: known never rated
        self._reset_pending()

    def _reset_pending(self) -> None:
        self.dirty_consumption: set[tuple[str, str]] = set()
        self.dirty_periods: set[PeriodKey] = set()
        self.dirty_balances: set[AccountKey] = set()
        self.rated: list[dict[str, Any]] = []
        self.held: list[dict[str, Any]] = []
        self.ledger: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []

    # --- before the first event: everything the batch needs, a few queries per tenant ----------------

    async def prepare(self, envelopes: Sequence[Envelope[Any]]) -> None:
        by_tenant: dict[str, list[Envelope[Any]]] = {}
        for envelope in envelopes:
            if isinstance(envelope.payload, ReadingValidated | ReadingCorrected):
                by_tenant.setdefault(envelope.tenant_id, []).append(envelope)
        paying: dict[str, list[tuple[MeterReading, str]]] = {}
        for tenant, events in by_tenant.items():
            paying[tenant] = await self._prepare_links(tenant, events)
        # Whoever holds several account locks takes them in one order (settlement chunks too): no deadlock.
        await self._lock({(tenant, account_id) for tenant, found in paying.items() for _, account_id in found} |
                         await self._corrected_accounts(by_tenant))
        for tenant, found in paying.items():
            await self._prepare_accounts(tenant, found)

    async def _prepare_links(self, tenant: str, events: list[Envelope[Any]]) -> list[tuple[MeterReading, str]]:
        """Consumption totals and links of the tenant's meters; (reading, paying account) of its readings."""
        totals = await db.load_many(self.session, tenant, {e.payload.meter_id for e in events
                                                           if isinstance(e.payload, ReadingValidated)})
        for envelope in events:
            if isinstance(envelope.payload, ReadingValidated):
                self.consumption[tenant, envelope.payload.meter_id] = totals.get(envelope.payload.meter_id)
        readings = [r for r in (_reading(e) for e in events) if r is not None]
        links = await store.links_of_meters(self.session, tenant, {r.meter_id for r in readings})
        for meter_id, meter_links in links.items():
            self.links[tenant, meter_id] = meter_links
        found = []
        for reading in readings:
            account_id = store.paying_at(links[reading.meter_id], reading.end)
            if account_id is not None:
                found.append((reading, account_id))
        return found

    async def _corrected_accounts(self, by_tenant: dict[str, list[Envelope[Any]]]) -> set[AccountKey]:
        """The accounts the corrected readings were rated onto, to lock them with the others."""
        found: set[AccountKey] = set()
        for tenant, events in by_tenant.items():
            superseded = [e.payload.supersedes_event_id for e in events if isinstance(e.payload, ReadingCorrected)]
            if superseded:
                rated = await rating_db.rated_many(self.session, tenant, superseded)
                found |= {(tenant, account_id) for account_id in rated.values()}
        return found

    async def _prepare_accounts(self, tenant: str, found: list[tuple[MeterReading, str]]) -> None:
        ids = sorted({account_id for _, account_id in found})
        if not ids:
            return
        accounts = await store.load_accounts(self.session, tenant, ids)
        balances = await store.balances_of(self.session, tenant, ids)
        now = self.clock.now()
        spans = [posting.averaged_days(now, account) for account in accounts.values()]
        # A day either side: the clock may pass midnight during the batch; the average takes its own days.
        recent = await store.settlements_of_accounts(
            self.session, tenant, ids, min(first for first, _ in spans) - timedelta(days=1),
            max(last for _, last in spans) + timedelta(days=1)) if spans else {}
        for account_id in ids:
            self.accounts[tenant, account_id] = accounts.get(account_id)
            self.balances[tenant, account_id] = balances.get(account_id)
            self.recent[tenant, account_id] = recent.get(account_id, [])
        linked = [(reading, accounts[a], link) for reading, a in found if a in accounts
                  for link in (accounts[a].link_at(reading.meter_id, reading.end),) if link is not None]
        tariffs = await store.load_tariffs(self.session, tenant, {link.tariff_id for _, _, link in linked})
        wanted: set[tuple[str, str, datetime]] = set()
        for tariff_id in {link.tariff_id for _, _, link in linked}:
            self.tariffs[tenant, tariff_id] = tariffs.get(tariff_id)
        for reading, account, link in linked:
            tariff = tariffs.get(link.tariff_id)
            if tariff is not None:
                try:
                    wanted |= {(account.account_id, link.tariff_id, start)
                               for start, _ in periods_of(reading, account, tariff)}
                except RatingError:
                    continue  # held when handled
        states = await rating_db.periods_of_accounts(self.session, tenant, wanted)
        for key in wanted:
            self.periods[(tenant, *key)] = states.get(key)

    async def _lock(self, accounts: Iterable[AccountKey]) -> None:
        todo = set(accounts) - self.locked
        if todo:
            await posting.lock_accounts_of_tenants(self.session, todo)
            self.locked |= todo

    # --- what was not read ahead: read when first needed ------------------------------------------------

    async def _account(self, tenant: str, account_id: str) -> Account | None:
        key = (tenant, account_id)
        if key not in self.accounts:
            await self._lock([key])
            self.accounts[key] = await store.load_account(self.session, tenant, account_id)
        return self.accounts[key]

    async def _balance(self, tenant: str, account: Account, now: datetime) -> dict[str, Any] | None:
        key = (tenant, account.account_id)
        if key not in self.balances:
            self.balances[key] = await store.balance_of(self.session, tenant, account.account_id)
        if key not in self.recent:
            first, last = posting.averaged_days(now, account)
            self.recent[key] = await store.settlements(self.session, tenant, account.account_id, first, last)
        return self.balances[key]

    async def _tariff(self, tenant: str, tariff_id: str) -> Tariff | None:
        if (tenant, tariff_id) not in self.tariffs:
            self.tariffs[tenant, tariff_id] = await store.load_tariff(self.session, tenant, tariff_id)
        return self.tariffs[tenant, tariff_id]

    async def _periods(self, tenant: str, account_id: str, tariff_id: str,
                       starts: Iterable[datetime]) -> dict[datetime, TierPeriodState]:
        keys = [(tenant, account_id, tariff_id, start) for start in starts]
        missing = [key[3] for key in keys if key not in self.periods]
        if missing:
            stored = await rating_db.periods(self.session, tenant, account_id, tariff_id, missing)
            for start in missing:
                self.periods[tenant, account_id, tariff_id, start] = stored.get(start)
        return {key[3]: state for key in keys if (state := self.periods[key]) is not None}

    async def _paying(self, tenant: str, meter_id: str, at: datetime) -> str | None:
        if (tenant, meter_id) not in self.links:
            self.links.update({(tenant, m): found for m, found in (
                await store.links_of_meters(self.session, tenant, [meter_id])).items()})
        return store.paying_at(self.links[tenant, meter_id], at)

    # --- each event, in memory ---------------------------------------------------------------------

    async def handle(self, session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        """`reading_handler`'s handle; its events are staged by the write-back (hence nothing returned)."""
        payload = envelope.payload
        if not isinstance(payload, ReadingValidated | ReadingCorrected):
            return []
        if isinstance(payload, ReadingValidated):
            await self._fold_consumption(envelope)
        now = self.clock.now()
        if isinstance(payload, ReadingCorrected) and await self._rerated(envelope, now):
            return []
        await self._rate(envelope, now)
        return []

    async def _fold_consumption(self, envelope: Envelope[Any]) -> None:
        key = (envelope.tenant_id, envelope.payload.meter_id)
        if key not in self.consumption:
            self.consumption[key] = await db.load(self.session, *key)
        try:
            self.consumption[key] = evolve(self.consumption[key], envelope.payload)
        except UnitMismatch as exc:
            raise Rejected(str(exc)) from exc  # dead-lettered with the reason for an operator to resolve
        self.dirty_consumption.add(key)

    async def _rerated(self, envelope: Envelope[Any], now: datetime) -> bool:
        """A correction of a rated reading goes the one-reading way, on what the batch has written so far."""
        await self.write_back()
        found = await rating_db.rated(self.session, envelope.tenant_id, envelope.payload.supersedes_event_id)
        if found is None:
            return False  # its reading was never rated: rated now as a new one
        tenant, (account_id, tariff_id, _) = envelope.tenant_id, found
        await self._lock([(tenant, account_id)])
        await rerate_found(self.session, envelope, found, now)
        # What the re-rating changed is read again when next needed.
        self.balances.pop((tenant, account_id), None)
        for key in [k for k in self.periods if k[:3] == (tenant, account_id, tariff_id)]:
            del self.periods[key]
        return True

    async def _rate(self, envelope: Envelope[Any], now: datetime) -> None:
        """billing.app `rate`, in memory."""
        tenant = envelope.tenant_id
        reading = reading_of(envelope.event_id, envelope.payload)
        if reading is None:
            return  # nothing billable: failed, missing, or a first reading without a span
        account_id = await self._paying(tenant, reading.meter_id, reading.end)
        if account_id is None:
            return self._hold(envelope, reading, f"no account pays for meter {reading.meter_id} at "
                                                 f"{reading.end.isoformat()}", now)
        account = await self._account(tenant, account_id)
        link = account.link_at(reading.meter_id, reading.end) if account else None
        tariff = await self._tariff(tenant, link.tariff_id) if link else None
        if account is None or link is None or tariff is None:
            return self._hold(envelope, reading, f"account {account_id} has no tariff for the meter", now)
        try:
            states = await self._periods(tenant, account_id, link.tariff_id,
                                         (start for start, _ in periods_of(reading, account, tariff)))
            rating = rate_reading(reading, account, tariff, states)
        except RatingError as exc:
            return self._hold(envelope, reading, str(exc), now)
        for start, state in rating.periods.items():
            # As the next reading would read it back (PostgreSQL keeps 9 places).
            self.periods[tenant, account_id, link.tariff_id, start] = replace(
                state, quantity=db.as_stored(state.quantity, self.dialect),
                exact_cost=db.as_stored(state.exact_cost, self.dialect))
            self.dirty_periods.add((tenant, account_id, link.tariff_id, start))
        self.rated.append(rating_db.rated_row(tenant, account_id, link.tariff_id, reading))
        if rating.charge is None:
            return None
        charge_id = uuid.uuid5(CHARGE_NAMESPACE, f"{tenant}/{envelope.event_id}")
        charge = store.envelope_of(rating.charge, tenant, account_id, now, charge_id, envelope)
        await self._post(charge, account, now, envelope)
        return None

    async def _post(self, charge: Envelope[Any], account: Account, now: datetime, cause: Envelope[Any]) -> None:
        """posting.post of one charge, in memory: the ledger row, the balance moved, the state assessed."""
        tenant = charge.tenant_id
        balance = await self._balance(tenant, account, now)
        if balance is None:
            raise LookupError(f"ledger entry {charge.event_id} for unknown account {account.account_id}")
        [row] = outbox_rows([charge], now)  # encoded once: the outbox's bytes are the ledger's text
        self.outbox.append(row)
        self.ledger.append(store.ledger_row(charge, ZoneInfo(balance["time_zone"]), row["message_value"].decode()))
        balance["balance"] = db.as_stored(balance["balance"] + balance_effect(charge.payload), self.dialect)
        balance["updated_at"] = charge.recorded_at
        # The recent settlements span a day more either side; the average takes the days it needs.
        status, events = posting.assessed(tenant, account, balance["status"], balance["balance"],
                                          self.recent[tenant, account.account_id], now, cause)
        balance["status"] = status.value
        self.outbox += outbox_rows(events, now)
        self.dirty_balances.add((tenant, account.account_id))

    def _hold(self, envelope: Envelope[Any], reading: MeterReading, reason: str, now: datetime) -> None:
        self.held.append(held(envelope, reading, reason, now))
        self.outbox += outbox_rows([unbilled_alarm(envelope, reading, reason, now)], now)

    # --- after the last event ----------------------------------------------------------------------

    async def write_back(self) -> None:
        """What the batch's readings changed, one statement per table (also before a correction)."""
        session = self.session
        await db.save_many(session, [(tenant, state) for (tenant, meter_id) in sorted(self.dirty_consumption)
                                     if (state := self.consumption[tenant, meter_id]) is not None])
        await rating_db.save_periods_many(session, [
            (tenant, account_id, tariff_id, period) for key in sorted(self.dirty_periods)
            for tenant, account_id, tariff_id, _ in (key,) if (period := self.periods[key]) is not None])
        await rating_db.insert_many(session, self.rated, self.held)
        await store.write_postings(session, self.ledger, [
            balance for key in sorted(self.dirty_balances) if (balance := self.balances[key]) is not None])
        if self.outbox:
            await session.execute(db.outbox.insert(), self.outbox)
        self._reset_pending()
