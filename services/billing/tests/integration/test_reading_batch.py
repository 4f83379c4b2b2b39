"""The batch reading handler on SQLite and PostgreSQL: one consumed batch gives the events, ledger,
balances and rating state that applying its readings one by one through `reading_handler` gives.

Two databases hold the same accounts; one consumes the batch through the real pipeline with
`reading_batch_handler`, the other the same records one at a time with `reading_handler`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.deadletter import ConsumedRecord
from amiflow_runtime.outbox import envelope_headers
from amiflow_runtime.pipeline import EventPipeline
from amiflow_runtime.testing import create_database
from amiflow_schemas import Envelope, decode_event, encode_event, new_envelope
from amiflow_schemas.events.accounts import AccountSettings, CustomerKind, LinkReason
from amiflow_schemas.events.readings import ReadingCorrected, ReadingValidated
from amiflow_schemas.events.tariffs import TariffPublished, TariffTier, TierPeriod
from amiflow_schemas.examples import example_payloads
from amiflow_schemas.primitives import Unit, Utility
from billing.adapters import db, rating_db, store
from billing.app import reading_handler
from billing.config import BillingSettings
from billing.core import accounts
from billing.main import build_runtime
from billing.reading_batch import reading_batch_handler
from sqlalchemy import Table, select

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
OPENED = datetime(2026, 6, 1, tzinfo=ZONE)
NOW = datetime(2026, 6, 10, 12, tzinfo=ZONE)
TENANT = "water-co"
CONSUMER = "billing.readings"
# Small tier steps so a few readings cross them; credit 100.00 so a balance is low before it is depleted.
TARIFF = TariffPublished(
    tariff_id="water", version_id="water-2026", utility=Utility.WATER, unit=Unit.M3, currency="CNY",
    tier_period=TierPeriod.CALENDAR_YEAR, effective_from=datetime(2026, 1, 1, tzinfo=ZONE),
    tiers=(TariffTier(up_to=Decimal(10), unit_price=Decimal("5.00")),
           TariffTier(up_to=Decimal(20), unit_price=Decimal("7.00")),
           TariffTier(up_to=None, unit_price=Decimal("9.00"))),
    register_prices=(), fixed_daily_charge=Decimal("0.50"), recurring_charges=(),
    published_at=datetime(2025, 12, 1, tzinfo=ZONE), description=None)
SETTINGS = AccountSettings(credit_limit=Decimal(100), low_balance_amount=Decimal("20.00"), low_balance_days=3,
                           restore_threshold=Decimal(0), tier_size_factor=Decimal(1), cut_off_policy_id=None,
                           exemptions=())


class NoDeadLetters:
    """Nothing of these batches may be dead-lettered."""

    async def publish(self, record: ConsumedRecord, reason: str, kind: str, now: datetime) -> None:
        raise AssertionError(f"dead-lettered ({kind}): {reason}")


def _event(payload: Any, key: str, at: datetime, n: int) -> Envelope[Any]:
    return new_envelope(payload, event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"setup/{n}"), tenant_id=TENANT, key=key,
                        occurred_at=at, recorded_at=at, producer="test")


async def _set_up(runtime: Any) -> None:
    """ACC-A pays for WM-A1 and WM-A2, ACC-B (100.00 paid in) for WM-B1; nobody for WM-X."""
    events: list[Envelope[Any]] = [_event(TARIFF, "water", OPENED, 0)]
    for account_id, meters in (("ACC-A", ("WM-A1", "WM-A2")), ("ACC-B", ("WM-B1",))):
        opened = accounts.open_account(account_id, f"C-{account_id}", CustomerKind.HOUSEHOLD, "CNY",
                                       "Asia/Shanghai", date(2026, 1, 1), SETTINGS, OPENED)
        account = accounts.evolve(None, opened)
        payloads: list[Any] = [opened]
        for meter_id in meters:
            link = accounts.link_meter(account, meter_id, Utility.WATER, "water", OPENED, LinkReason.CONNECTED)
            account = accounts.evolve(account, link)
            payloads.append(link)
        events += [_event(p, account_id, OPENED, len(events) + n) for n, p in enumerate(payloads)]
    payment = example_payloads()["PaymentReceived"].model_copy(update={
        "account_id": "ACC-B", "amount": Decimal("100.00"), "paid_at": OPENED})
    events.append(_event(payment, "ACC-B", OPENED, len(events)))
    async with runtime.sessions() as session, session.begin():
        await store.emit(session, events, OPENED)


def validated(meter_id: str, day: int, quantity: str) -> ReadingValidated:
    example = example_payloads()["ReadingValidated"].model_dump(mode="json")
    return ReadingValidated.model_validate({
        **example, "meter_id": meter_id, "utility": Utility.WATER, "measured_at": OPENED + timedelta(days=day + 1),
        "previous_measured_at": OPENED + timedelta(days=day), "consumption": Decimal(quantity),
        "consumption_unit": Unit.M3, "status": "actual", "estimation_method": None, "register_consumption": None})


def corrected(of: Envelope[Any], quantity: str) -> ReadingCorrected:
    return ReadingCorrected.model_validate({
        **of.payload.model_dump(), "consumption": Decimal(quantity), "reading_version": 2,
        "supersedes_event_id": of.event_id, "correction_reason": "late_actual"})


def reading(payload: Any, n: int) -> Envelope[Any]:
    return new_envelope(payload, event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"reading/{n}"), tenant_id=TENANT,
                        key=payload.meter_id, occurred_at=payload.measured_at, recorded_at=payload.measured_at,
                        producer="vee")


def record(envelope: Envelope[Any], offset: int) -> ConsumedRecord:
    return ConsumedRecord(topic="amiflow.vee.readings", partition=0, offset=offset, key=envelope.key.encode(),
                          value=encode_event(envelope), headers=envelope_headers(envelope))


@pytest.fixture
async def two_databases(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    if database_url.startswith("sqlite"):
        return [database_url, f"sqlite+aiosqlite:///{tmp_path / 'one-by-one.db'}"]
    return [database_url, await create_database(request.getfixturevalue("postgres_admin_url"))]


@pytest.fixture
async def worlds(two_databases: list[str]) -> AsyncIterator[list[Any]]:
    runtimes = []
    for url in two_databases:
        runtime = build_runtime(BillingSettings(database_url=url), "test")
        runtime.clock = FrozenClock(NOW)
        await runtime.migrate()
        await _set_up(runtime)
        runtimes.append(runtime)
    yield runtimes
    for runtime in runtimes:
        await runtime.engine.dispose()


def pipeline(runtime: Any, handler: Any) -> EventPipeline:
    return EventPipeline(consumer=CONSUMER, sessions=runtime.sessions, inbox=db.inbox, outbox=db.outbox,
                         handler=handler, dead_letters=NoDeadLetters(), clock=runtime.clock)  # type: ignore[arg-type]


async def rows(runtime: Any, table: Table, *order: str, leave_out: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    async with runtime.engine.connect() as conn:
        found = await conn.execute(select(table).order_by(*(table.c[name] for name in order)))
        return [{k: v for k, v in r._asdict().items() if k not in leave_out} for r in found]


async def staged(runtime: Any) -> list[Envelope[Any]]:
    """The events the readings caused (the set-up's are left out), in staging order."""
    events = [decode_event(row["message_value"]) for row in await rows(runtime, db.outbox, "id")]
    return [e for e in events if e.causation_id is not None]


async def test_a_batch_gives_the_events_ledger_and_balances_of_applying_its_readings_one_by_one(
        worlds: list[Any]) -> None:
    batched, one_by_one = worlds
    b0 = reading(validated("WM-B1", 0, "4"), 0)  # rated before the batch: 20.00, ACC-B 80.00
    a1 = reading(validated("WM-A1", 0, "2"), 1)  # 10.00: ACC-A -10.00, low
    a2 = reading(validated("WM-A2", 0, "6"), 2)  # 30.00: -40.00
    b1 = reading(validated("WM-B1", 1, "13"), 3)  # 6 x 5.00 + 7 x 7.00 = 79.00: ACC-B 1.00, low
    a3 = reading(validated("WM-A1", 1, "6"), 4)  # across the first step: 2 x 5.00 + 4 x 7.00 = 38.00: -78.00
    x1 = reading(validated("WM-X", 0, "1"), 5)  # nobody pays: held, an alarm
    c0 = reading(corrected(b0, "0"), 6)  # b0 was nothing: -28.00 back, ACC-B 29.00, normal again
    a4 = reading(validated("WM-A2", 1, "5"), 7)  # 35.00: -113.00, depleted
    c3 = reading(corrected(a3, "7"), 8)  # a3 re-rated in its own batch: +7.00, -120.00
    b2 = reading(validated("WM-B1", 2, "3"), 9)  # 21.00: ACC-B 8.00, low again (a second BalanceLow)
    batch = [a1, a2, b1, a3, x1, a2, c0, a4, c3, b2]  # a2 twice: the second is a duplicate

    await pipeline(batched, reading_batch_handler(batched.clock)).apply(record(b0, 0))
    await pipeline(batched, reading_batch_handler(batched.clock)).apply_batch(
        [record(e, n) for n, e in enumerate(batch, start=1)])
    for n, envelope in enumerate([b0, *batch]):
        await pipeline(one_by_one, reading_handler(one_by_one.clock)).apply(record(envelope, n))

    events = await staged(batched)
    assert [encode_event(e) for e in events] == [encode_event(e) for e in await staged(one_by_one)]
    by_account: dict[str, list[tuple[str, Decimal | None]]] = {}
    for event in events:
        by_account.setdefault(event.key, []).append((event.event_type, getattr(event.payload, "amount", None)))
    assert by_account["ACC-A"] == [
        ("ChargeApplied", Decimal("10.00")), ("BalanceLow", None), ("ChargeApplied", Decimal("30.00")),
        ("ChargeApplied", Decimal("38.00")), ("ChargeApplied", Decimal("35.00")), ("BalanceDepleted", None),
        ("AdjustmentPosted", Decimal("7.00"))]
    assert by_account["ACC-B"] == [
        ("ChargeApplied", Decimal("20.00")), ("ChargeApplied", Decimal("79.00")), ("BalanceLow", None),
        ("AdjustmentPosted", Decimal("-28.00")), ("ChargeApplied", Decimal("21.00")), ("BalanceLow", None)]
    assert [(e.event_type, e.key) for e in events if e.key not in ("ACC-A", "ACC-B")] == [("AlarmRaised", "WM-X")]
    charge_ids = {e.payload.reading_event_id: e.event_id for e in events if e.event_type == "ChargeApplied"}
    assert charge_ids[a1.event_id] == uuid.uuid5(uuid.UUID("0b6f7c1e-59a5-4f0c-9a55-2d8e3c1f6a10"),
                                                  f"{TENANT}/{a1.event_id}")

    for table, order, leave_out in ((store.ledger_entries, ("recorded_at", "event_id"), ()),
                                    (store.account_balances, ("account_id",), ()),
                                    (rating_db.tier_periods, ("account_id", "period_start"), ()),
                                    (rating_db.rated_readings, ("id",), ()),
                                    (rating_db.unbilled_readings, ("event_id",), ()),
                                    (db.meter_consumption, ("meter_id",), ()),
                                    (db.inbox, ("event_id",), ("processed_at",))):
        assert await rows(batched, table, *order, leave_out=leave_out) == \
            await rows(one_by_one, table, *order, leave_out=leave_out), table.name
    balances = {r["account_id"]: (r["balance"], r["status"]) for r in await rows(batched, store.account_balances,
                                                                                 "account_id")}
    assert balances == {"ACC-A": (Decimal("-120.00"), "depleted"), "ACC-B": (Decimal("8.00"), "low")}
    assert [r["meter_id"] for r in await rows(batched, rating_db.unbilled_readings, "event_id")] == ["WM-X"]
    totals = {r["meter_id"]: (r["total"], r["readings"]) for r in await rows(batched, db.meter_consumption,
                                                                             "meter_id")}
    assert totals["WM-A1"] == (Decimal(8), 2) and totals["WM-B1"] == (Decimal(20), 3)  # first versions only


async def test_a_reading_that_fails_undoes_its_batch_and_the_others_are_rated_one_by_one(
        worlds: list[Any]) -> None:
    """A unit the meter's totals were not kept in is rejected: the batch rolls back, nothing of it is
    kept twice, and the other readings are rated on the one-by-one path (a scope of one event each)."""
    batched = worlds[0]
    rejected: list[str] = []

    class Recording(NoDeadLetters):
        async def publish(self, record: ConsumedRecord, reason: str, kind: str, now: datetime) -> None:
            rejected.append(kind)

    a1 = reading(validated("WM-A1", 0, "2"), 1)
    heat = [reading(ReadingValidated.model_validate({
        "meter_id": "HM-9", "utility": "heat", "measured_at": OPENED + timedelta(hours=hour),
        "registers": [{"register": "total", "value": "50", "unit": unit}], "consumption": "1",
        "consumption_unit": unit, "previous_measured_at": None, "status": "actual", "estimation_method": None,
        "source_event_id": uuid.uuid4()}), 10 + hour) for hour, unit in ((1, "GJ"), (2, "kWh"))]
    a2 = reading(validated("WM-A2", 0, "6"), 3)
    runner = pipeline(batched, reading_batch_handler(batched.clock))
    runner.dead_letters = Recording()  # type: ignore[assignment]
    await runner.apply_batch([record(e, n) for n, e in enumerate([a1, *heat, a2])])

    assert rejected == ["rejected"]
    charges = [(e.payload.reading_event_id, e.payload.amount) for e in await staged(batched)
               if e.event_type == "ChargeApplied"]
    assert charges == [(a1.event_id, Decimal("10.00")), (a2.event_id, Decimal("30.00"))]
    [balance] = [r for r in await rows(batched, store.account_balances, "account_id") if r["account_id"] == "ACC-A"]
    assert balance["balance"] == Decimal("-40.00")
    assert [(r["meter_id"], r["readings"]) for r in await rows(batched, db.meter_consumption, "meter_id")] == [
        ("HM-9", 1), ("WM-A1", 1), ("WM-A2", 1)]

