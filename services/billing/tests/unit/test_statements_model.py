"""The e-bill's data model: it refuses inexact money, and a bill that disagrees with the ledger."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from amiflow_schemas.events.billing import PaymentChannel
from amiflow_schemas.primitives import Unit, Utility
from billing.statements import (
    BillingMonth,
    ChargeBasis,
    ChargeLine,
    DailyUsage,
    LedgerLine,
    LedgerLineKind,
    Payment,
    StatementDoesNotReconcile,
    StatementTotals,
    check_reconciles,
)
from billing.statements.examples import SAMPLE_PAYMENT, sample_statement

SHANGHAI = timezone(timedelta(hours=8))


def test_sample_unified_account_reconciles() -> None:
    statement = sample_statement()

    check_reconciles(statement)

    assert statement.charges_by_utility() == {Utility.WATER: Decimal("60.60"), Utility.ELECTRICITY: Decimal("94.09")}
    assert statement.usage_by_utility() == {Utility.WATER: (Decimal("10.500"), Unit.M3),
                                            Utility.ELECTRICITY: (Decimal("162.00"), Unit.KWH)}


def test_closing_balance_that_does_not_follow_from_the_ledger_is_refused() -> None:
    statement = replace(sample_statement(), closing_balance=Decimal("70.32"))

    with pytest.raises(StatementDoesNotReconcile, match=re.escape("not the closing 70.32")) as raised:
        check_reconciles(statement)

    assert len(raised.value.problems) == 1


def test_charge_lines_that_do_not_add_up_to_the_charges_total_are_refused() -> None:
    statement = sample_statement()
    one_cent_less = replace(statement.charges[0], amount=Decimal("39.99"))
    statement = replace(statement, charges=(one_cent_less, *statement.charges[1:]))

    expected = "charge lines add up to 154.68, the total says 154.69"
    with pytest.raises(StatementDoesNotReconcile, match=re.escape(expected)):
        check_reconciles(statement)


def test_a_missing_payment_line_is_refused_even_when_the_balances_agree() -> None:
    statement = replace(sample_statement(), payments=())

    expected = "payment lines add up to 0.00, the total says 200.00"
    with pytest.raises(StatementDoesNotReconcile, match=re.escape(expected)):
        check_reconciles(statement)


def test_other_lines_must_add_up_to_their_signed_total() -> None:
    statement = sample_statement()
    statement = replace(statement, totals=replace(statement.totals, other=Decimal("5.00")))

    with pytest.raises(StatementDoesNotReconcile) as raised:
        check_reconciles(statement)

    # Both the section and the balance equation disagree, and the error says so for each.
    assert len(raised.value.problems) == 2


def test_payment_made_on_the_next_local_day_does_not_belong_to_the_month() -> None:
    # 2026-07-31 16:30 UTC is 2026-08-01 00:30 in Shanghai: an August payment.
    late = Payment(datetime(2026, 7, 31, 16, 30, tzinfo=UTC), PaymentChannel.ALIPAY, "AP-1",
                   Decimal("200.00"))
    statement = replace(sample_statement(), payments=(late,))

    with pytest.raises(StatementDoesNotReconcile, match="made on 2026-08-01, not in 2026-07"):
        check_reconciles(statement)


def test_daily_usage_given_twice_for_one_day_is_refused() -> None:
    statement = sample_statement()
    statement = replace(statement, daily_usage=(*statement.daily_usage, statement.daily_usage[0]))

    with pytest.raises(StatementDoesNotReconcile, match="given twice"):
        check_reconciles(statement)


def test_money_as_float_is_refused() -> None:
    with pytest.raises(TypeError, match="must be a Decimal"):
        replace(SAMPLE_PAYMENT, amount=200.0)


def test_sub_cent_money_is_refused() -> None:
    with pytest.raises(ValueError, match="not a whole number of cents"):
        StatementTotals(payments=Decimal("0.005"), charges=Decimal(0), other=Decimal(0))


def test_naive_payment_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(SAMPLE_PAYMENT, paid_at=datetime(2026, 7, 5, 10, 12))


@pytest.mark.parametrize(("kind", "amount"), [
    (LedgerLineKind.REFUND, "12.00"),
    (LedgerLineKind.SUBSIDY, "-12.00"),
    (LedgerLineKind.RECURRING_CHARGE, "30.00"),
])
def test_ledger_line_with_the_wrong_sign_for_its_kind_is_refused(kind: LedgerLineKind, amount: str) -> None:
    with pytest.raises(ValueError, match=f"a {kind.value} is a"):
        LedgerLine(kind, datetime(2026, 7, 1, tzinfo=SHANGHAI), "move-out", Decimal(amount))


def test_tier_line_must_name_its_tier_and_no_register() -> None:
    with pytest.raises(ValueError, match="tier line names its tier"):
        ChargeLine(Utility.WATER, ChargeBasis.TIER, Decimal(1), Unit.M3, Decimal("5.00"), Decimal("5.00"))
    with pytest.raises(ValueError, match="time-of-use line names its register"):
        ChargeLine(Utility.WATER, ChargeBasis.TIER, Decimal(1), Unit.M3, Decimal("5.00"), Decimal("5.00"),
                   tier=1, register="T1")


def test_charge_in_a_unit_the_service_does_not_use_is_refused() -> None:
    with pytest.raises(ValueError, match="not a water unit"):
        ChargeLine(Utility.WATER, ChargeBasis.FLAT, Decimal(1), Unit.KWH, Decimal("5.00"), Decimal("5.00"))


def test_fixed_daily_fee_counts_whole_days_without_a_unit() -> None:
    with pytest.raises(ValueError, match="whole days"):
        ChargeLine(Utility.WATER, ChargeBasis.FIXED_DAILY, Decimal("1.5"), None, Decimal("0.10"), Decimal("0.15"))


def test_one_service_in_two_units_is_refused() -> None:
    statement = sample_statement()
    heat = (DailyUsage(date(2026, 7, 1), Utility.HEAT, Decimal(1), Unit.GJ),
            DailyUsage(date(2026, 7, 2), Utility.HEAT, Decimal(1), Unit.KWH))

    with pytest.raises(ValueError, match="heat usage is given in two units"):
        replace(statement, daily_usage=(*statement.daily_usage, *heat))


def test_billing_month_lists_every_local_day() -> None:
    assert len(BillingMonth(2026, 2).days()) == 28
    assert BillingMonth(2026, 12).days()[-1] == date(2026, 12, 31)
    assert date(2026, 7, 31) in BillingMonth(2026, 7)
    assert date(2026, 8, 1) not in BillingMonth(2026, 7)
