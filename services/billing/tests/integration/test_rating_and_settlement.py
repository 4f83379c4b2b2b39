"""Billing's worker side on SQLite and PostgreSQL: validated readings rated onto accounts through the
real handler (R1, R4), balance states, readings nobody pays for held and rated later, and the daily
settlement exactly once per account and day, equal to a recomputation from the ledger."""

from __future__ import annotations

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
from amiflow_schemas.events.readings import ReadingCorrected, ReadingValidated
from amiflow_schemas.events.tariffs import TariffPublished, TariffTier, TierPeriod
from amiflow_schemas.examples import example_payloads
from amiflow_schemas.primitives import Unit, Utility
from billing.adapters import db, rating_db, store
from billing.app import reading_handler
from billing.config import BillingSettings
from billing.core import accounts
from billing.core.ledger import balance_effect
from billing.main import build_runtime
from billing.settlement_app import settle_all
from sqlalchemy import select

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
OPENED = datetime(2026, 6, 1, tzinfo=ZONE)
TENANT = "water-co"


@pytest.fixture
async def billing(database_url: str) -> AsyncIterator[Any]:
    runtime = build_runtime(BillingSettings(database_url=database_url), "test")
    runtime.clock = FrozenClock(datetime(2026, 6, 10, 12, tzinfo=ZONE))
    await runtime.migrate()
    yield runtime
    await runtime.engine.dispose()


def _event(payload: Any, key: str, at: datetime) -> Any:
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=TENANT, key=key, occurred_at=at, recorded_at=at,
                        producer="test")


async def open_account(runtime: Any, account_id: str, meters: tuple[str, ...] = ("WM-1",)) -> None:
    tariff = TariffPublished(
        tariff_id="water", version_id="water-2026", utility=Utility.WATER, unit=Unit.M3, currency="CNY",
        tier_period=TierPeriod.CALENDAR_YEAR, effective_from=datetime(2026, 1, 1, tzinfo=ZONE),
        tiers=(TariffTier(up_to=Decimal(180), unit_price=Decimal("5.00")),
               TariffTier(up_to=Decimal(260), unit_price=Decimal("7.00")),
               TariffTier(up_to=None, unit_price=Decimal("9.00"))),
        register_prices=(), fixed_daily_charge=Decimal("0.50"), recurring_charges=(),
        published_at=datetime(2025, 12, 1, tzinfo=ZONE), description=None)
    settings = AccountSettings(credit_limit=Decimal(0), low_balance_amount=Decimal("20.00"), low_balance_days=3,
                               restore_threshold=Decimal(0), tier_size_factor=Decimal(1), cut_off_policy_id=None,
                               exemptions=())
    opened = accounts.open_account(account_id, "C-1", CustomerKind.HOUSEHOLD, "CNY", "Asia/Shanghai",
                                   date(2026, 1, 1), settings, OPENED)
    account = accounts.evolve(None, opened)
    events = [opened]
    for meter_id in meters:
        link = accounts.link_meter(account, meter_id, Utility.WATER, "water", OPENED, LinkReason.CONNECTED)
        account = accounts.evolve(account, link)
        events.append(link)
    async with runtime.sessions() as session, session.begin():
        if await store.load_tariff(session, TENANT, "water") is None:
            await store.emit(session, [_event(tariff, "water", OPENED)], OPENED)
        await store.emit(session, [_event(e, account_id, OPENED) for e in events], OPENED)


def validated(meter_id: str, start: datetime, end: datetime, quantity: str, status: str = "actual") -> Any:
    example = example_payloads()["ReadingValidated"].model_dump(mode="json")
    return ReadingValidated.model_validate({**example,
        "meter_id": meter_id, "utility": Utility.WATER, "measured_at": end, "previous_measured_at": start,
        "consumption": Decimal(quantity), "consumption_unit": Unit.M3, "status": status,
        "estimation_method": "linear_interpolation" if status == "estimated" else None,
        "register_consumption": None})


async def feed(runtime: Any, payload: Any) -> Any:
    envelope = _event(payload, payload.meter_id, payload.measured_at)
    async with runtime.sessions() as session, session.begin():
        await stage(session, db.outbox, await reading_handler(runtime.clock)(session, envelope),
                    runtime.clock.now())
    return envelope


async def staged(runtime: Any, *types: str) -> list[Any]:
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(db.outbox).order_by(db.outbox.c.id))).all()
    return [e for e in (decode_event(r.message_value) for r in rows) if not types or e.event_type in types]


async def test_r1_a_reading_across_the_first_tier_boundary_is_charged_60(billing: Any) -> None:
    await open_account(billing, "ACC-R1")
    await feed(billing, validated("WM-1", OPENED, OPENED + timedelta(days=2), "175.00"))
    await feed(billing, validated("WM-1", OPENED + timedelta(days=2), OPENED + timedelta(days=3), "10.00"))
    charges = [e.payload for e in await staged(billing, "ChargeApplied")]
    assert [c.amount for c in charges] == [Decimal("875.00"), Decimal("60.00")]
    assert [(line.tier, line.quantity) for line in charges[1].lines] == [(1, Decimal("5.00")), (2, Decimal("5.00"))]
    async with billing.sessions() as session:
        row = await store.balance_of(session, TENANT, "ACC-R1")
    assert (row["balance"], row["status"]) == (Decimal("-935.00"), "depleted")
    [depleted] = [e.payload for e in await staged(billing, "BalanceDepleted")]
    assert [m.meter_id for m in depleted.meters] == ["WM-1"]


async def test_r4_an_actual_replacing_a_rated_estimate_posts_a_5_00_adjustment(billing: Any) -> None:
    await open_account(billing, "ACC-R4")
    estimate = await feed(billing, validated("WM-1", OPENED, OPENED + timedelta(hours=5), "3.00", "estimated"))
    actual = ReadingCorrected.model_validate({
        **validated("WM-1", OPENED, OPENED + timedelta(hours=5), "2.00").model_dump(),
        "reading_version": 2, "supersedes_event_id": estimate.event_id, "correction_reason": "late_actual"})
    await feed(billing, actual)
    [adjustment] = [e.payload for e in await staged(billing, "AdjustmentPosted")]
    assert adjustment.amount == Decimal("-5.00") and adjustment.correction_event_id is not None
    async with billing.sessions() as session:
        assert (await store.balance_of(session, TENANT, "ACC-R4"))["balance"] == Decimal("-10.00")


async def test_a_reading_no_account_pays_for_is_held_with_an_alarm_and_rated_once_linked(billing: Any) -> None:
    await open_account(billing, "ACC-H", meters=())
    await feed(billing, validated("WM-9", OPENED, OPENED + timedelta(days=1), "4.00"))
    [alarm] = [e.payload for e in await staged(billing, "AlarmRaised")]
    assert (alarm.alarm_type.value, alarm.subject_id) == ("unbilled_consumption", "WM-9")
    async with billing.sessions() as session:
        assert [r["meter_id"] for r in await rating_db.held(session, TENANT)] == ["WM-9"]
        account = await store.load_account(session, TENANT, "ACC-H")
    assert account is not None
    link = accounts.link_meter(account, "WM-9", Utility.WATER, "water", OPENED, LinkReason.CONNECTED)
    async with billing.sessions() as session, session.begin():
        await store.emit(session, [_event(link, "ACC-H", OPENED)], OPENED)
    await settle_all(billing.sessions, billing.clock, lambda: None, timedelta(minutes=10))
    consumption = [e.payload for e in await staged(billing, "ChargeApplied") if e.payload.kind.value == "consumption"]
    assert [(c.meter_id, c.amount) for c in consumption] == [("WM-9", Decimal("20.00"))]
    async with billing.sessions() as session:
        assert await rating_db.held(session, TENANT) == []


async def test_each_closed_day_is_settled_once_and_equals_the_ledger(billing: Any) -> None:
    await open_account(billing, "ACC-S")
    await feed(billing, validated("WM-1", OPENED, OPENED + timedelta(days=1), "2.00"))
    await settle_all(billing.sessions, billing.clock, lambda: None, timedelta(minutes=10))
    await settle_all(billing.sessions, billing.clock, lambda: None, timedelta(minutes=10))  # a re-run
    settled = [e.payload for e in await staged(billing, "DailySettled")]
    assert [s.settlement_date for s in settled] == [date(2026, 6, d) for d in range(1, 10)]  # 06-10 still open
    assert all(s.fixed_charges_total == Decimal("0.50") for s in settled)
    async with billing.sessions() as session:
        row = await store.balance_of(session, TENANT, "ACC-S")
        ledger = await store.ledger(session, TENANT, "ACC-S")
    recomputed = sum((balance_effect(e.payload) for e in ledger), Decimal(0))
    # The 10.00 charge was recorded on 06-10 (business day of the recording): the next settlement takes it.
    assert settled[-1].closing_balance == Decimal("-4.50")  # 9 fixed fees of 0.50
    assert recomputed == row["balance"] == Decimal("-14.50")
    assert row["settled_through"] == date(2026, 6, 9)
    for previous, current in pairwise(settled):
        assert current.opening_balance == previous.closing_balance
