"""billing.md's rating scenarios R1-R4 and the low-balance rule B1 end to end: validated readings go onto
amiflow.vee.readings, a real billing worker (Faust, PostgreSQL) rates and settles, and the ledger and
balance topics carry the spec's numbers. Then the billing topics are replayed into an empty database
and every balance and every DailySettled comes back to the cent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.testing import create_database, unique
from amiflow_schemas import decode_event, encode_event, envelope_headers, new_envelope
from amiflow_schemas.events.accounts import AccountSettings, CustomerKind, LinkReason
from amiflow_schemas.events.billing import PaymentChannel, PaymentReceived
from amiflow_schemas.events.readings import ReadingCorrected, ReadingValidated
from amiflow_schemas.events.tariffs import TariffPublished, TariffTier, TierPeriod
from amiflow_schemas.examples import example_payloads
from amiflow_schemas.primitives import Unit, Utility
from billing import posting
from billing.adapters import store
from billing.config import BillingSettings
from billing.core import accounts
from billing.main import build_runtime
from sqlalchemy import select

pytestmark = pytest.mark.e2e

ZONE = ZoneInfo("Asia/Shanghai")
TODAY = datetime.now(ZONE).date()
LONG_AGO = datetime(2026, 6, 1, tzinfo=ZONE)
WEEK_AGO = datetime.combine(TODAY - timedelta(days=7), datetime.min.time(), tzinfo=ZONE)


def tariff(tariff_id: str, version: str, effective: datetime, utility: Utility, unit: Unit,
           tiers: list[tuple[str | None, str]], fixed: str = "0") -> TariffPublished:
    return TariffPublished(
        tariff_id=tariff_id, version_id=version, utility=utility, unit=unit, currency="CNY",
        tier_period=TierPeriod.CALENDAR_YEAR, effective_from=effective,
        tiers=tuple(TariffTier(up_to=None if up is None else Decimal(up), unit_price=Decimal(p)) for up, p in tiers),
        register_prices=(), fixed_daily_charge=Decimal(fixed), recurring_charges=(),
        published_at=effective - timedelta(days=1), description=None)


TARIFFS = [
    tariff("water-steps", "ws-2026", datetime(2026, 1, 1, tzinfo=ZONE), Utility.WATER, Unit.M3,
           [("180", "5.00"), ("260", "7.00"), (None, "9.00")]),
    tariff("power-flat", "pf-2026", datetime(2026, 1, 1, tzinfo=ZONE), Utility.ELECTRICITY, Unit.KWH,
           [(None, "0.4883")]),
    tariff("water-flat", "wf-2026", datetime(2026, 1, 1, tzinfo=ZONE), Utility.WATER, Unit.M3, [(None, "5.00")]),
    tariff("water-flat", "wf-2026-07", datetime(2026, 7, 1, tzinfo=ZONE), Utility.WATER, Unit.M3, [(None, "5.50")]),
    tariff("water-fee", "fee-2026", datetime(2026, 1, 1, tzinfo=ZONE), Utility.WATER, Unit.M3, [(None, "8.00")],
           fixed="8.00"),
]
# account, meter, utility, tariff, opened, low amount, low days
ACCOUNTS = [("R1", "W-R1", Utility.WATER, "water-steps", LONG_AGO, "0", 0),
            ("R2", "E-R2", Utility.ELECTRICITY, "power-flat", LONG_AGO, "0", 0),
            ("R3", "W-R3", Utility.WATER, "water-flat", LONG_AGO, "0", 0),
            ("R4", "W-R4", Utility.WATER, "water-flat", LONG_AGO, "0", 0),
            ("B1", "W-B1", Utility.WATER, "water-fee", WEEK_AGO, "20.00", 3)]


def _envelope(payload: Any, tenant: str, key: str, at: datetime) -> Any:
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=tenant, key=key, occurred_at=at,
                        recorded_at=at, producer="test")


async def set_up_accounts(database_url: str, tenant: str) -> None:
    """Tariffs and accounts as billing's API records them (in process, on the worker's database)."""
    runtime = build_runtime(BillingSettings(database_url=database_url), "test")
    await runtime.migrate()
    events = [_envelope(t, tenant, t.tariff_id, t.published_at) for t in TARIFFS]
    for account_id, meter_id, utility, tariff_id, opened_at, low_amount, low_days in ACCOUNTS:
        settings = AccountSettings(credit_limit=Decimal(0), low_balance_amount=Decimal(low_amount),
                                   low_balance_days=low_days, restore_threshold=Decimal(0),
                                   tier_size_factor=Decimal(1), cut_off_policy_id=None, exemptions=())
        opened = accounts.open_account(account_id, f"C-{account_id}", CustomerKind.HOUSEHOLD, "CNY",
                                       "Asia/Shanghai", date(2026, 1, 1), settings, opened_at)
        link = accounts.link_meter(accounts.evolve(None, opened), meter_id, utility, tariff_id, opened_at,
                                   LinkReason.CONNECTED)
        events += [_envelope(opened, tenant, account_id, opened_at), _envelope(link, tenant, account_id, opened_at)]
    async with runtime.sessions() as session, session.begin():
        await store.emit(session, events, datetime.now(UTC))
    await runtime.engine.dispose()


async def pay(database_url: str, tenant: str, account_id: str, amount: str) -> None:
    runtime = build_runtime(BillingSettings(database_url=database_url), "test")
    now = datetime.now(UTC)
    try:
        async with runtime.sessions() as session, session.begin():
            await posting.lock_account(session, tenant, account_id)
            account = await store.load_account(session, tenant, account_id)
            assert account is not None
            await posting.post(session, tenant, account, [PaymentReceived(
                account_id=account_id, channel=PaymentChannel.CASH, provider_transaction_id=f"cash-{uuid.uuid4()}",
                amount=Decimal(amount), currency="CNY", paid_at=now)], now)
    finally:
        await runtime.engine.dispose()


def validated(meter_id: str, utility: Utility, unit: Unit, start: datetime, end: datetime, quantity: str,
              status: str = "actual") -> ReadingValidated:
    example = example_payloads()["ReadingValidated"].model_dump(mode="json")
    return ReadingValidated.model_validate({
        **example, "meter_id": meter_id, "utility": utility, "measured_at": end, "previous_measured_at": start,
        "consumption": quantity, "consumption_unit": unit, "status": status, "register_consumption": None,
        "estimation_method": "linear_interpolation" if status == "estimated" else None,
        "registers": [{"register": "total", "value": "1", "unit": unit}]})


async def send_readings(bootstrap: str, tenant: str, readings: list[tuple[uuid.UUID, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for event_id, payload in readings:
            at = payload.measured_at
            envelope = new_envelope(payload, event_id=event_id, tenant_id=tenant, key=payload.meter_id,
                                    occurred_at=at, recorded_at=at, producer="vee")
            await producer.send_and_wait("amiflow.vee.readings", encode_event(envelope), key=payload.meter_id.encode(),
                                         headers=envelope_headers(envelope))
    finally:
        await producer.stop()


async def billing_events(bootstrap: str, tenant: str, done: Any) -> list[Any]:
    consumer = AIOKafkaConsumer("amiflow.billing.ledger", "amiflow.billing.balance", bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[Any] = []
    try:
        async with asyncio.timeout(180):
            while not done(found):
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    found += [e for e in (decode_event(m.value) for m in messages) if e.tenant_id == tenant]
    except TimeoutError:
        pass  # the assertions say what is missing
    finally:
        await consumer.stop()
    return found


def of(events: list[Any], event_type: str, account_id: str) -> list[Any]:
    return [e.payload for e in events if e.event_type == event_type and e.payload.account_id == account_id]


async def projections(database_url: str, tenant: str) -> tuple[dict[str, Decimal], set[tuple[str, date, Decimal]]]:
    runtime = build_runtime(BillingSettings(database_url=database_url), "test")
    try:
        async with runtime.sessions() as session:
            balances = {r.account_id: r.balance for r in await session.execute(
                select(store.account_balances).where(store.account_balances.c.tenant_id == tenant))}
            settled = {(r.account_id, r.settlement_date, r.closing_balance) for r in await session.execute(
                select(store.daily_settlements).where(store.daily_settlements.c.tenant_id == tenant))}
    finally:
        await runtime.engine.dispose()
    return balances, settled


def test_rating_scenarios_settlement_and_a_replay_agree_to_the_cent(
        kafka_bootstrap: str, postgres_admin_url: str, tmp_path: Path) -> None:
    tenant = unique("bill")
    database_url = asyncio.run(create_database(postgres_admin_url, "billing"))
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "AMIFLOW_ENV": "test",
           "BILLING_DATABASE_URL": database_url, "BILLING_OPS_PORT": str(free_port()),
           "BILLING_FAUST_APP_ID": f"billing-{tenant}", "AMIFLOW_DATA_DIR": str(tmp_path),
           "BILLING_SETTLEMENT_INTERVAL_S": "2", "BILLING_SETTLEMENT_DELAY_S": "0"}
    asyncio.run(set_up_accounts(database_url, tenant))
    with open(tmp_path / "billing-worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "billing.main", "worker"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        events = asyncio.run(run_scenarios(kafka_bootstrap, database_url, tenant))
        assert worker.poll() is None, (tmp_path / "billing-worker.log").read_text()[-3000:]
    finally:
        worker.terminate()
        worker.wait(30)

    assert [c.amount for c in of(events, "ChargeApplied", "R1")] == [Decimal("875.00"), Decimal("60.00")]
    assert [c.amount for c in of(events, "ChargeApplied", "R2")] == [Decimal("0.49"), Decimal("0.49"), Decimal("0.48")]
    [r3] = of(events, "ChargeApplied", "R3")
    assert r3.amount == Decimal("12.60") and {line.unit_price for line in r3.lines} == {Decimal("5.00"),
                                                                                      Decimal("5.50")}
    [r4] = of(events, "AdjustmentPosted", "R4")
    assert r4.amount == Decimal("-5.00")
    [low] = of(events, "BalanceLow", "B1")
    assert (low.balance, low.threshold, low.average_daily_cost) == (Decimal("22.00"), Decimal("24.00"),
                                                                    Decimal("8.00"))
    settled_b1 = of(events, "DailySettled", "B1")
    assert len({s.settlement_date for s in settled_b1}) == len(settled_b1) == 7  # once per day, re-runs or not

    replayed = asyncio.run(create_database(postgres_admin_url, "replay"))
    rebuilt = subprocess.run([sys.executable, "-m", "billing.main", "rebuild"], capture_output=True, text=True,
                             env={**env, "BILLING_DATABASE_URL": replayed}, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    live, again = asyncio.run(projections(database_url, tenant)), asyncio.run(projections(replayed, tenant))
    assert live == again and live[0]["R1"] == Decimal("-935.00")


async def run_scenarios(bootstrap: str, database_url: str, tenant: str) -> list[Any]:
    water, power = (Utility.WATER, Unit.M3), (Utility.ELECTRICITY, Unit.KWH)
    day = timedelta(days=1)
    estimate_id = uuid.uuid4()
    readings: list[tuple[uuid.UUID, Any]] = [
        (uuid.uuid4(), validated("W-R1", *water, LONG_AGO, LONG_AGO + 30 * day, "175.00")),
        (uuid.uuid4(), validated("W-R1", *water, LONG_AGO + 30 * day, LONG_AGO + 31 * day, "10.00")),
        *((uuid.uuid4(), validated("E-R2", *power, LONG_AGO + n * day, LONG_AGO + (n + 1) * day, "1.00"))
          for n in range(3)),
        (uuid.uuid4(), validated("W-R3", *water, datetime(2026, 6, 30, 12, tzinfo=ZONE),
                                 datetime(2026, 7, 1, 12, tzinfo=ZONE), "2.40")),
        (estimate_id, validated("W-R4", *water, LONG_AGO, LONG_AGO + day, "3.00", "estimated")),
    ]
    actual = ReadingCorrected.model_validate({
        **validated("W-R4", *water, LONG_AGO, LONG_AGO + day, "2.00").model_dump(), "reading_version": 2,
        "supersedes_event_id": estimate_id, "correction_reason": "late_actual"})
    await send_readings(bootstrap, tenant, [*readings, (uuid.uuid4(), actual)])
    # B1: a week of 8.00 fixed fees settles (-56.00); 86.00 paid → 30.00; a reading of 1 m3 at 8.00 → 22.00.
    await billing_events(bootstrap, tenant, lambda found: len(of(found, "DailySettled", "B1")) >= 7)
    await pay(database_url, tenant, "B1", "86.00")
    await send_readings(bootstrap, tenant, [(uuid.uuid4(), validated(
        "W-B1", *water, datetime.now(UTC) - timedelta(hours=2), datetime.now(UTC) - timedelta(hours=1), "1.00"))])
    return await billing_events(bootstrap, tenant, lambda found: bool(of(found, "BalanceLow", "B1"))
                                and bool(of(found, "AdjustmentPosted", "R4")))
