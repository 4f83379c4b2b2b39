"""The settlement job in chunks, on SQLite and PostgreSQL: accounts of different spans settled in one
transaction each close exactly the days one account at a time would, equal to their ledger; a chunk's
locks are the ones a posting takes; an account the core refuses holds back only itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.outbox import stage
from amiflow_schemas import decode_event, new_envelope
from amiflow_schemas.events.accounts import AccountSettings, CustomerKind, LinkReason
from amiflow_schemas.events.billing import PaymentChannel, PaymentReceived
from amiflow_schemas.events.readings import ReadingValidated
from amiflow_schemas.events.tariffs import TariffPublished, TariffTier, TierPeriod
from amiflow_schemas.examples import example_payloads
from amiflow_schemas.primitives import Unit, Utility
from billing import posting
from billing.adapters import db, store
from billing.app import reading_handler
from billing.config import BillingSettings
from billing.core import accounts
from billing.core.ledger import balance_effect
from billing.main import build_runtime
from billing.settlement_app import settle_all
from sqlalchemy import select, text

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
TENANT = "chunks"
JUNE = datetime(2026, 6, 1, tzinfo=ZONE)
DELAY = timedelta(minutes=10)


@pytest.fixture
async def billing(database_url: str) -> AsyncIterator[Any]:
    runtime = build_runtime(BillingSettings(database_url=database_url), "test")
    await runtime.migrate()
    yield runtime
    await runtime.engine.dispose()


def at(runtime: Any, day: int, hour: int = 12) -> datetime:
    runtime.clock = FrozenClock(JUNE + timedelta(days=day - 1, hours=hour))
    now: datetime = runtime.clock.now()
    return now


def _event(payload: Any, key: str, moment: datetime) -> Any:
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=TENANT, key=key, occurred_at=moment,
                        recorded_at=moment, producer="test")


async def open_account(runtime: Any, account_id: str, opened: datetime, tariff_id: str = "water") -> None:
    """An account paying for meter WM-<id> at ``tariff_id`` (0.50 a day), low below 20.00."""
    tariff = TariffPublished(
        tariff_id="water", version_id="water-2026", utility=Utility.WATER, unit=Unit.M3, currency="CNY",
        tier_period=TierPeriod.MONTH, effective_from=datetime(2026, 1, 1, tzinfo=ZONE),
        tiers=(TariffTier(up_to=None, unit_price=Decimal("5.00")),), register_prices=(),
        fixed_daily_charge=Decimal("0.50"), recurring_charges=(), published_at=datetime(2025, 12, 1, tzinfo=ZONE),
        description=None)
    settings = AccountSettings(credit_limit=Decimal(0), low_balance_amount=Decimal("20.00"), low_balance_days=3,
                               restore_threshold=Decimal(0), tier_size_factor=Decimal(1), cut_off_policy_id=None,
                               exemptions=())
    opened_event = accounts.open_account(account_id, f"C-{account_id}", CustomerKind.HOUSEHOLD, "CNY",
                                         "Asia/Shanghai", date(2026, 1, 1), settings, opened)
    account = accounts.evolve(None, opened_event)
    # Linked unchecked: a tariff the store does not know is how a refused settlement is set up.
    link = accounts.link_meter(account, f"WM-{account_id}", Utility.WATER, tariff_id, opened, LinkReason.CONNECTED)
    async with runtime.sessions() as session, session.begin():
        if await store.load_tariff(session, TENANT, "water") is None:
            await store.emit(session, [_event(tariff, "water", opened)], opened)
        await store.emit(session, [_event(e, account_id, opened) for e in (opened_event, link)], opened)


async def pay(runtime: Any, account_id: str, amount: str) -> None:
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        await posting.lock_account(session, TENANT, account_id)
        account = await store.load_account(session, TENANT, account_id)
        assert account is not None
        payment = PaymentReceived(account_id=account_id, channel=PaymentChannel.CASH,
                                  provider_transaction_id=f"cash-{uuid.uuid4().hex[:8]}", amount=Decimal(amount),
                                  currency="CNY", paid_at=now)
        await posting.post(session, TENANT, account, [payment], now)


async def read(runtime: Any, account_id: str, hours: int, quantity: str) -> None:
    """A validated reading of the ``hours`` before now on the account's meter, rated by the real handler."""
    now = runtime.clock.now()
    example = example_payloads()["ReadingValidated"].model_dump(mode="json")
    payload = ReadingValidated.model_validate({
        **example, "meter_id": f"WM-{account_id}", "utility": Utility.WATER, "measured_at": now,
        "previous_measured_at": now - timedelta(hours=hours), "consumption": Decimal(quantity),
        "consumption_unit": Unit.M3, "status": "actual", "estimation_method": None, "register_consumption": None})
    async with runtime.sessions() as session, session.begin():
        await stage(session, db.outbox, await reading_handler(runtime.clock)(
            session, _event(payload, payload.meter_id, now)), now)


async def staged(runtime: Any, event_type: str) -> list[Any]:
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(db.outbox).order_by(db.outbox.c.id))).all()
    return [e for e in (decode_event(r.message_value) for r in rows) if e.event_type == event_type]


async def settle(runtime: Any, **options: Any) -> int:
    concurrency = options.pop("concurrency", 1 if runtime.engine.dialect.name == "sqlite" else 2)
    return await settle_all(runtime.sessions, runtime.clock, lambda: None, DELAY, concurrency, **options)


async def test_accounts_of_different_spans_in_one_chunk_settle_each_day_once_equal_to_the_ledger(
        billing: Any) -> None:
    for account_id in ("A", "B"):
        await open_account(billing, account_id, JUNE)
    at(billing, 1, 9)
    await pay(billing, "A", "100.00")
    at(billing, 6)
    assert await settle(billing, chunk_accounts=2) == 10  # A and B: June 1-5
    await open_account(billing, "C", JUNE + timedelta(days=6))
    await open_account(billing, "D", JUNE + timedelta(days=7))
    at(billing, 8, 9)
    await pay(billing, "D", "20.80")  # two fees later 19.80: below the low threshold of 20.00
    for day in (7, 8, 9):
        at(billing, day, 18)
        for account_id in ("A", "B", "C"):
            await read(billing, account_id, 6, "1.20")
    at(billing, 10)
    # A, B: June 6-9; C: 7-9; D: 8-9 — in chunks of two, two chunks at once on PostgreSQL.
    assert await settle(billing, chunk_accounts=2) == 4 + 4 + 3 + 2
    assert await settle(billing, chunk_accounts=2) == 0  # a re-run settles nothing
    settled = [e.payload for e in await staged(billing, "DailySettled")]
    async with billing.sessions() as session:
        for account_id, first in (("A", 1), ("B", 1), ("C", 7), ("D", 8)):
            days = [s for s in settled if s.account_id == account_id]
            assert [s.settlement_date for s in days] == [date(2026, 6, d) for d in range(first, 10)], account_id
            assert days[0].opening_balance == 0
            for previous, current in pairwise(days):
                assert current.opening_balance == previous.closing_balance
            for day in days:
                entries = await store.entries_of_day(session, TENANT, account_id, day.settlement_date)
                assert day.closing_balance == day.opening_balance + sum(
                    (balance_effect(e.payload) for e in entries), Decimal(0)), (account_id, day.settlement_date)
                assert day.fixed_charges_total == Decimal("0.50")
            row = await store.balance_of(session, TENANT, account_id)
            ledger = await store.ledger(session, TENANT, account_id)
            assert row is not None and row["settled_through"] == date(2026, 6, 9)
            assert row["balance"] == sum((balance_effect(e.payload) for e in ledger), Decimal(0))
        d_row = await store.balance_of(session, TENANT, "D")
    assert d_row is not None and (d_row["balance"], d_row["status"]) == (Decimal("19.80"), "low")
    [low] = [e.payload for e in await staged(billing, "BalanceLow")]
    assert (low.account_id, low.balance) == ("D", Decimal("19.80"))
    # A's 100.00 on June 1 less a fee a day; the readings of June 7-9 (6.00 each) were recorded in the evenings.
    assert [s.closing_balance for s in settled if s.account_id == "A"][-1] == Decimal("100.00") - 9 * Decimal(
        "0.50") - 3 * Decimal("6.00")


async def test_days_left_unsettled_beyond_the_averaged_week_open_with_the_last_closing(billing: Any) -> None:
    await open_account(billing, "A", JUNE)
    at(billing, 1, 9)
    await pay(billing, "A", "50.00")
    at(billing, 2)
    assert await settle(billing) == 1  # June 1 closes at 49.50
    at(billing, 12)
    assert await settle(billing) == 10  # June 2-11: the week the threshold averages no longer holds June 1
    settled = [e.payload for e in await staged(billing, "DailySettled")]
    assert settled[1].opening_balance == Decimal("49.50")
    assert settled[-1].closing_balance == Decimal("44.50")


async def test_an_account_the_core_refuses_holds_back_only_itself(billing: Any) -> None:
    for account_id in ("A", "B", "C"):
        await open_account(billing, account_id, JUNE, tariff_id="unknown" if account_id == "B" else "water")
    at(billing, 4)
    assert await settle(billing, chunk_accounts=3) == 6  # A and C: June 1-3; B's tariff is not known
    async with billing.sessions() as session:
        settled_through = {a: (await store.balance_of(session, TENANT, a) or {})["settled_through"]
                           for a in ("A", "B", "C")}
    assert settled_through == {"A": date(2026, 6, 3), "B": None, "C": date(2026, 6, 3)}


async def test_a_chunk_whose_every_account_fails_stops_the_pass(billing: Any) -> None:
    for account_id in ("A", "B"):
        await open_account(billing, account_id, JUNE, tariff_id="unknown")
    at(billing, 4)
    with pytest.raises(RuntimeError, match="every account of a chunk"):
        await settle(billing, chunk_accounts=2)


async def test_only_accounts_behind_their_last_closed_day_are_due(billing: Any) -> None:
    for account_id in ("A", "B"):
        await open_account(billing, account_id, JUNE)
    at(billing, 3)
    await settle(billing)

    def last_closed(zone: Any) -> date:
        return date(2026, 6, 2)

    async with billing.sessions() as session:
        assert await store.accounts_to_settle(session, last_closed) == []
    await open_account(billing, "C", JUNE + timedelta(days=2))
    async with billing.sessions() as session:
        assert await store.accounts_to_settle(session, last_closed) == [(TENANT, "C")]


async def test_a_chunk_holds_the_lock_a_posting_to_any_of_its_accounts_takes(postgres_database: Any) -> None:
    runtime = build_runtime(BillingSettings(database_url=await postgres_database("locks")), "test")
    await runtime.migrate()

    async def try_lock(session: Any, account_id: str) -> bool:
        key = posting.account_lock_key(TENANT, account_id)
        return bool((await session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})).scalar())

    try:
        async with runtime.sessions() as chunk, chunk.begin():
            await posting.lock_accounts(chunk, TENANT, ["C", "A", "B"])
            async with runtime.sessions() as other, other.begin():
                await posting.lock_account(other, TENANT, "Z")  # not in the chunk: taken at once
                assert not await try_lock(other, "B")  # the chunk holds B's lock …
                assert not await try_lock(chunk, "Z")  # … and account_lock_key is lock_account's key
                assert await try_lock(other, "Y")
    finally:
        await runtime.engine.dispose()


async def test_a_chunk_that_deadlocks_with_a_posting_goes_again(postgres_database: Any,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    runtime = build_runtime(BillingSettings(database_url=await postgres_database("deadlock")), "test")
    await runtime.migrate()
    try:
        for account_id in ("A", "B"):
            await open_account(runtime, account_id, JUNE)
        at(runtime, 3)
        async with runtime.sessions() as other, other.begin():
            # The other transaction outwaits the chunk, so PostgreSQL's deadlock check aborts the chunk.
            await other.execute(text("SET LOCAL deadlock_timeout = '60s'"))
            await posting.lock_account(other, TENANT, "B")
            settling = asyncio.ensure_future(settle(runtime, chunk_accounts=2))
            for _ in range(1200):  # until the chunk holds A and waits for B
                if (await other.execute(text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))).scalar():
                    break
                await asyncio.sleep(0.05)
            await posting.lock_account(other, TENANT, "A")  # and now this waits for A: a deadlock
        assert await settling == 4  # A and B: June 1 and 2, once
        assert any("retrying" in r.getMessage() for r in caplog.records)
    finally:
        await runtime.engine.dispose()
