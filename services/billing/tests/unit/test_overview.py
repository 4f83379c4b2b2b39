"""The overview: open accounts by balance state, every account's balance and arrears, collections by local day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from billing.core.balance_state import BalanceStatus
from billing.core.overview import AccountBalance, Collected, overview


def test_open_accounts_are_counted_by_state_and_a_closed_accounts_debt_is_still_arrears() -> None:
    found = overview(date(2026, 7, 15), [
        AccountBalance(True, BalanceStatus.NORMAL, Decimal("200.00")),
        AccountBalance(True, BalanceStatus.LOW, Decimal("5.00")),
        AccountBalance(True, BalanceStatus.DEPLETED, Decimal("-0.50")),
        AccountBalance(False, BalanceStatus.DEPLETED, Decimal("-12.25")),
        AccountBalance(False, BalanceStatus.NORMAL, Decimal("0")),
    ], [])
    assert (found.open_accounts, found.open_by_state) == (3, {BalanceStatus.NORMAL: 1, BalanceStatus.LOW: 1,
                                                             BalanceStatus.DEPLETED: 1})
    assert found.balance_total == Decimal("192.25")
    assert (found.arrears_accounts, found.arrears_amount) == (2, Decimal("12.75"))


def test_collections_of_the_day_and_of_its_month_through_the_day() -> None:
    payments = [Collected(date(2026, 6, 30), Decimal("20.00")), Collected(date(2026, 7, 1), Decimal("30.00")),
                Collected(date(2026, 7, 15), Decimal("100.00")), Collected(date(2026, 7, 15), Decimal("0.30")),
                Collected(date(2026, 7, 16), Decimal("7.00"))]
    found = overview(date(2026, 7, 15), [], payments)
    assert (found.collected_day, found.collected_month, found.payments_day) == (
        Decimal("100.30"), Decimal("130.30"), 2)
    assert str(found.balance_total) == "0.00" and found.open_accounts == 0
