"""The morning overview of a tenant's money: accounts by balance state, the balances held, arrears, collections.

Open accounts are counted by state; balances and arrears take closed accounts too, since a closed account's
debt is still owed (a move-out refunds what is left and leaves arrears where they are). Collections are the
payments credited (subsidies are not customers' money), by the local day the ledger counts them on, like
the daily-collections report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing.core.balance_state import BalanceStatus
from billing.core.money import ZERO, round_money


@dataclass(frozen=True)
class AccountBalance:
    """One account as the overview counts it."""

    open: bool
    state: BalanceStatus
    balance: Decimal


@dataclass(frozen=True)
class Collected:
    """A payment credited on a local day."""

    day: date
    amount: Decimal


@dataclass(frozen=True)
class Overview:
    day: date
    open_by_state: dict[BalanceStatus, int]  # every state present, 0 when none
    balance_total: Decimal
    arrears_accounts: int
    arrears_amount: Decimal  # positive: what the accounts in arrears owe
    collected_day: Decimal
    collected_month: Decimal  # from the 1st of the day's month through the day
    payments_day: int

    @property
    def open_accounts(self) -> int:
        return sum(self.open_by_state.values())


def overview(day: date, accounts: Iterable[AccountBalance], payments: Iterable[Collected]) -> Overview:
    """The overview of ``day``: balances as they stand, collections of the day and of its month so far."""
    by_state = dict.fromkeys(BalanceStatus, 0)
    total, owing, owed = ZERO, 0, ZERO
    for account in accounts:
        if account.open:
            by_state[account.state] += 1
        total += account.balance
        if account.balance < 0:
            owing, owed = owing + 1, owed - account.balance
    month_start = day.replace(day=1)
    collected_day, collected_month, count = ZERO, ZERO, 0
    for payment in payments:
        if month_start <= payment.day <= day:
            collected_month += payment.amount
        if payment.day == day:
            collected_day, count = collected_day + payment.amount, count + 1
    return Overview(day, by_state, round_money(total), owing, round_money(owed), round_money(collected_day),
                    round_money(collected_month), count)
