"""Daily settlement: fixed and recurring postings, the day's sums, and agreement with the ledger fold."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.billing import (
    AdjustmentPosted,
    AdjustmentReason,
    ChargeApplied,
    ChargeKind,
    ChargeLine,
    PaymentChannel,
    PaymentReceived,
    RefundIssued,
    RefundReason,
    SubsidyGranted,
)
from amiflow_schemas.primitives import Unit, Utility
from billing.core.ledger import LedgerEntry, LedgerPayload, balance, business_day, totals
from billing.core.periods import day_bounds
from billing.core.settlement import SettlementError, close_day, settle
from hypothesis import given, settings
from hypothesis import strategies as st

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 7, 1)
START, END = day_bounds(DAY, SHANGHAI)
NAMESPACE = UUID("6a0c7a34-9f0e-4f0b-8a77-0d7e0c9b1f11")
Builder = Callable[..., Any]


def charge(amount: str, measured_at: datetime = END - timedelta(hours=1), quantity: str = "1",
           utility: Utility = Utility.WATER) -> ChargeApplied:
    """A consumption charge for a reading measured at ``measured_at``."""
    unit = Unit.M3 if utility is Utility.WATER else Unit.KWH
    return ChargeApplied(
        account_id="ACC-1", kind=ChargeKind.CONSUMPTION, meter_id="WM-1", utility=utility,
        reading_event_id=uuid5(NAMESPACE, f"{measured_at}{amount}"), period_start=measured_at - timedelta(hours=1),
        period_end=measured_at, quantity=Decimal(quantity), quantity_unit=unit,
        lines=(ChargeLine(tariff_version_id="v", tier=1, register=None, quantity=Decimal(quantity),
                          unit_price=Decimal(amount), cost=Decimal(amount) * Decimal(quantity)),),
        amount=Decimal(amount), currency="CNY", tier_period_cost=Decimal(amount))


def payment(amount: str, reference: str = "tx-1") -> PaymentReceived:
    """A WeChat Pay payment."""
    return PaymentReceived(account_id="ACC-1", channel=PaymentChannel.WECHAT_PAY, provider_transaction_id=reference,
                           amount=Decimal(amount), currency="CNY", paid_at=START)


def refund(amount: str) -> RefundIssued:
    """An operator's refund."""
    return RefundIssued(account_id="ACC-1", reason=RefundReason.OPERATOR, amount=Decimal(amount), currency="CNY",
                        refunded_at=START, operator_id="op-1")


def subsidy(amount: str) -> SubsidyGranted:
    """One line of a subsidy batch."""
    return SubsidyGranted(account_id="ACC-1", batch_id="B-1", line_number=1, amount=Decimal(amount), currency="CNY",
                          reason="winter", granted_at=START)


def manual(amount: str) -> AdjustmentPosted:
    """An operator's adjustment, signed like a charge."""
    return AdjustmentPosted(account_id="ACC-1", reason=AdjustmentReason.MANUAL, amount=Decimal(amount), currency="CNY",
                            posted_at=START, meter_id=None, utility=None, correction_event_id=None, quantity=None,
                            quantity_unit=None, lines=(), replaced_lines=(), counterpart_account_id=None,
                            operator_id="op-1", note="goodwill")


def entry(payload: LedgerPayload, recorded_at: datetime = START + timedelta(hours=12)) -> LedgerEntry:
    """The payload as recorded at ``recorded_at``."""
    return LedgerEntry(uuid5(NAMESPACE, f"{payload!r}{recorded_at}"), recorded_at, payload)


def test_the_settlement_posts_one_fixed_fee_per_meter_linked_when_the_day_starts(
        account: Builder, tariff: Builder) -> None:
    acc = account(meters=[("WM-1", Utility.WATER, "water"), ("WM-2", Utility.WATER, "water")])
    water = tariff(fixed="0.50")

    closed = close_day(acc, {"water": water}, DAY, Decimal("30.00"), [])

    fees = [p for p in closed.postings if isinstance(p, ChargeApplied)]
    assert [(f.meter_id, f.kind, f.amount, f.period_start, f.period_end) for f in fees] == [
        ("WM-1", ChargeKind.FIXED_DAILY, Decimal("0.50"), START, END),
        ("WM-2", ChargeKind.FIXED_DAILY, Decimal("0.50"), START, END)]
    assert closed.settlement.fixed_charges_total == Decimal("1.00")
    assert closed.settlement.closing_balance == Decimal("29.00")


def test_a_meter_linked_during_the_day_pays_its_first_fee_the_next_day(account: Builder, tariff: Builder) -> None:
    acc = account(opened_at=START + timedelta(hours=10))

    closed = close_day(acc, {"water": tariff(fixed="0.50")}, DAY, Decimal(0), [])

    assert closed.postings == ()


def test_recurring_charges_are_posted_once_per_tariff_on_the_first_day_of_the_month(
        account: Builder, tariff: Builder) -> None:
    acc = account(meters=[("WM-1", Utility.WATER, "water"), ("WM-2", Utility.WATER, "water")])
    water = {"water": tariff(recurring=[("property fee", "35.00")])}

    first = close_day(acc, water, DAY, Decimal("100.00"), [])
    second = close_day(acc, water, DAY + timedelta(days=1), first.settlement.closing_balance, [])

    assert [(p.charge_name, p.amount, p.month) for p in first.postings] == [("property fee", Decimal("35.00"), DAY)]
    assert first.settlement.adjustments_total == Decimal("-35.00")
    assert first.settlement.closing_balance == Decimal("65.00")
    assert second.postings == ()


def test_the_days_sums_follow_from_its_entries(account: Builder) -> None:
    late = charge("4.00", measured_at=START - timedelta(hours=2), quantity="0.8")  # a reading of yesterday
    payloads = [charge("10.00", quantity="2"), payment("50.00"), late, refund("5.00"), subsidy("3.00"), manual("-1.00")]

    settled = settle(account(), DAY, Decimal("20.00"), payloads)

    assert (settled.charges_total, settled.payments_total, settled.fixed_charges_total) == (
        Decimal("10.00"), Decimal("50.00"), Decimal(0))
    assert settled.adjustments_total == Decimal("-5.00")  # -4.00 late - 5.00 refund + 3.00 subsidy + 1.00 credit
    assert settled.closing_balance == Decimal("55.00") == Decimal("20.00") + balance(payloads)
    assert [(c.utility, c.quantity, c.unit) for c in settled.consumption] == [(Utility.WATER, Decimal("2.8"), Unit.M3)]


def test_settling_again_gives_the_same_settlement(account: Builder, tariff: Builder) -> None:
    acc, tariffs = account(), {"water": tariff(fixed="0.50", recurring=[("property fee", "35.00")])}
    entries = [entry(charge("10.00")), entry(payment("50.00"))]

    assert close_day(acc, tariffs, DAY, Decimal("1.00"), entries) == close_day(acc, tariffs, DAY, Decimal("1.00"),
                                                                               entries)


def test_an_entry_recorded_after_midnight_belongs_to_the_next_day_and_a_fee_to_the_day_it_pays_for(
        account: Builder, tariff: Builder) -> None:
    acc = account()
    fee = close_day(acc, {"water": tariff(fixed="0.50")}, DAY, Decimal(0), []).postings[0]

    assert business_day(entry(charge("1.00"), END + timedelta(seconds=1)), SHANGHAI) == DAY + timedelta(days=1)
    assert business_day(entry(fee, END + timedelta(minutes=30)), SHANGHAI) == DAY
    with pytest.raises(SettlementError, match="another day"):
        close_day(acc, {}, DAY, Decimal(0), [entry(charge("1.00"), END + timedelta(seconds=1))])


def test_the_sub_ledgers_per_service_add_up_to_the_balance() -> None:
    payloads = [charge("10.00"), charge("4.00", utility=Utility.ELECTRICITY), payment("50.00"), subsidy("3.00"),
                refund("5.00"), manual("2.00")]

    summary = totals(payloads)

    assert summary.by_service == {Utility.WATER: Decimal("10.00"), Utility.ELECTRICITY: Decimal("4.00")}
    assert summary.balance == balance(payloads) == Decimal("32.00")


_AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2)
_ENTRY = st.one_of(
    st.builds(lambda a, h: (charge(str(a), measured_at=START + timedelta(hours=h)), h), _AMOUNTS, st.integers(-30, 23)),
    st.builds(lambda a: (payment(str(a), reference=str(a)), 12), _AMOUNTS),
    st.builds(lambda a: (refund(str(a)), 12), _AMOUNTS),
    st.builds(lambda a: (subsidy(str(a)), 12), _AMOUNTS),
    st.builds(lambda a: (manual(str(a)), 12), st.decimals(min_value=-100, max_value=100, places=2)),
)


@settings(max_examples=60, deadline=None)
@given(days=st.lists(st.lists(_ENTRY, max_size=8), min_size=1, max_size=5))
def test_settlements_day_after_day_equal_a_recomputation_from_the_ledger(
        account: Builder, tariff: Builder, days: list[list[tuple[Any, int]]]) -> None:
    acc, tariffs = account(), {"water": tariff(fixed="0.50", recurring=[("property fee", "35.00")])}
    ledger: list[LedgerPayload] = []
    opening = Decimal(0)
    for offset, drafts in enumerate(days):
        day = DAY + timedelta(days=offset)
        day_start, _ = day_bounds(day, SHANGHAI)
        entries = [entry(payload, day_start + timedelta(hours=max(hour, 0) % 24)) for payload, hour in drafts]
        closed = close_day(acc, tariffs, day, opening, entries)
        ledger += [*(e.payload for e in entries), *closed.postings]
        assert closed.settlement.closing_balance == balance(ledger) == totals(ledger).balance
        assert closed.settlement.opening_balance == opening
        opening = closed.settlement.closing_balance
