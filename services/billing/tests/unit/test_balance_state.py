"""Balance states normal -> low -> depleted and back, announced on entering only (billing.md B1-B3)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from amiflow_schemas.events.accounts import ExemptionWindow
from amiflow_schemas.events.billing import BalanceDepleted, BalanceLow, BalanceRestored, DailySettled
from amiflow_schemas.primitives import Utility
from billing.core.balance_state import BalanceAssessment, BalanceStatus, assess, average_daily_cost, low_threshold

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 7, 3, 23, 10, tzinfo=SHANGHAI)
Builder = Callable[..., Any]
BOTH_METERS = [("WM-1", Utility.WATER, "water"), ("EM-1", Utility.ELECTRICITY, "power")]


def _settled(day: date, charges: str, fixed: str = "0") -> DailySettled:
    spent = Decimal(charges) + Decimal(fixed)
    return DailySettled(account_id="ACC-1", settlement_date=day, time_zone="Asia/Shanghai", currency="CNY",
                        opening_balance=spent, charges_total=Decimal(charges), fixed_charges_total=Decimal(fixed),
                        payments_total=Decimal(0), adjustments_total=Decimal(0), closing_balance=Decimal(0),
                        consumption=())


def test_b1_falling_below_the_threshold_emits_one_balance_low_and_a_second_drop_nothing(account: Builder) -> None:
    acc = account()  # low amount 20.00, low days 3
    average = Decimal("8.00")

    normal = assess(BalanceStatus.NORMAL, acc, Decimal("30.00"), average, AT)
    low = assess(normal.status, acc, Decimal("22.00"), average, AT)
    lower = assess(low.status, acc, Decimal("21.00"), average, AT)

    assert normal == BalanceAssessment(BalanceStatus.NORMAL, ())
    assert low.status is BalanceStatus.LOW
    assert [(type(e), e.threshold, e.balance) for e in low.events if isinstance(e, BalanceLow)] == [
        (BalanceLow, Decimal("24.00"), Decimal("22.00"))]
    assert len(low.events) == 1
    assert lower.status is BalanceStatus.LOW and lower.events == ()


def test_the_average_daily_cost_is_over_the_last_seven_settled_days() -> None:
    as_of = date(2026, 7, 10)
    days = [_settled(as_of - timedelta(days=n), "7.50", "0.50") for n in range(1, 8)]
    older = _settled(as_of - timedelta(days=8), "100.00")

    assert average_daily_cost([*days, older], as_of) == Decimal("8.00")
    assert average_daily_cost(days[:2], as_of) == Decimal("8.00")  # a young account: its days only
    assert average_daily_cost([older], as_of) is None


def test_without_history_the_low_amount_alone_is_the_threshold(account: Builder) -> None:
    assert low_threshold(account().settings, None) == Decimal("20.00")
    assert low_threshold(account().settings, Decimal("5.00")) == Decimal("20.00")


def test_b2_reaching_minus_the_credit_limit_emits_one_balance_depleted_naming_every_meter(
        account: Builder) -> None:
    acc = account(meters=BOTH_METERS)

    depleted = assess(BalanceStatus.LOW, acc, Decimal("-0.50"), None, AT)
    again = assess(depleted.status, acc, Decimal("-3.00"), None, AT)

    assert depleted.status is BalanceStatus.DEPLETED
    (event,) = depleted.events
    assert isinstance(event, BalanceDepleted)
    assert [(m.meter_id, m.utility) for m in event.meters] == [("WM-1", Utility.WATER), ("EM-1", Utility.ELECTRICITY)]
    assert event.exempt_until is None
    assert again.events == ()


def test_b3_a_payment_lifting_a_depleted_balance_above_the_restore_threshold_restores_it(account: Builder) -> None:
    acc = account(meters=BOTH_METERS)

    restored = assess(BalanceStatus.DEPLETED, acc, Decimal("49.50"), None, AT)

    assert restored.status is BalanceStatus.NORMAL
    assert [type(e) for e in restored.events] == [BalanceRestored]


def test_a_depleted_balance_stays_depleted_until_it_passes_the_restore_threshold(account: Builder) -> None:
    acc = account(credit_limit="10.00", restore="5.00")

    overdrawn = assess(BalanceStatus.LOW, acc, Decimal("-5.00"), None, AT)
    depleted = assess(overdrawn.status, acc, Decimal("-10.00"), None, AT)
    partly_paid = assess(depleted.status, acc, Decimal("5.00"), None, AT)
    restored = assess(partly_paid.status, acc, Decimal("5.01"), None, AT)

    assert (overdrawn.status, overdrawn.events) == (BalanceStatus.LOW, ())  # an overdraft within the credit limit
    assert depleted.status is BalanceStatus.DEPLETED
    assert (partly_paid.status, partly_paid.events) == (BalanceStatus.DEPLETED, ())
    assert [type(e) for e in restored.events] == [BalanceRestored, BalanceLow]
    assert restored.status is BalanceStatus.LOW


def test_inside_an_exemption_window_depletion_is_still_reported_with_the_windows_end(account: Builder) -> None:
    until = AT + timedelta(days=10)
    window = ExemptionWindow(starts_at=AT - timedelta(days=1), ends_at=until, reason="medical equipment at home")
    acc = account(exemptions=[window])

    (event,) = assess(BalanceStatus.NORMAL, acc, Decimal("-1.00"), None, AT).events

    assert isinstance(event, BalanceDepleted) and event.exempt_until == until
