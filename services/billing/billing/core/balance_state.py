"""Balance states normal -> low -> depleted and back (billing.md "Balance thresholds").

Billing reports states only. The cut-off policy, exemption windows included, lives in the commands
service: a depleted balance is reported even inside an exemption window, with ``exempt_until`` set
so commands does not cut off before it ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from amiflow_schemas.events.accounts import AccountSettings
from amiflow_schemas.events.billing import BalanceDepleted, BalanceLow, BalanceRestored, DailySettled

from billing.core.accounts import Account
from billing.core.money import ZERO, round_money

AVERAGE_OVER_DAYS = 7

BalanceEvent = BalanceLow | BalanceDepleted | BalanceRestored


class BalanceStatus(StrEnum):
    """Where an account's balance stands; events are emitted on entering a state only."""

    NORMAL = "normal"
    LOW = "low"
    DEPLETED = "depleted"


def average_daily_cost(settlements: Iterable[DailySettled], as_of: date) -> Decimal | None:
    """Charges and fixed charges per settled day over the 7 local days before ``as_of``, to the cent.

    Days without a settlement (the account is younger than a week) are left out of the mean
    rather than counted as free; None when there is no settled day at all.
    """
    first = as_of - timedelta(days=AVERAGE_OVER_DAYS)
    recent = [s for s in settlements if first <= s.settlement_date < as_of]
    if not recent:
        return None
    spent = sum((s.charges_total + s.fixed_charges_total for s in recent), ZERO)
    return round_money(spent / len(recent))


def low_threshold(settings: AccountSettings, average: Decimal | None) -> Decimal:
    """max(low amount, low days x average daily cost); the low amount alone without history."""
    if average is None:
        return settings.low_balance_amount
    return max(settings.low_balance_amount, settings.low_balance_days * average)


@dataclass(frozen=True)
class BalanceAssessment:
    """The state after a balance change and the events to append for entering it."""

    status: BalanceStatus
    events: tuple[BalanceEvent, ...]


def _low(account: Account, balance: Decimal, threshold: Decimal, average: Decimal | None, at: datetime) -> BalanceLow:
    return BalanceLow(account_id=account.account_id, balance=balance, threshold=threshold,
                      average_daily_cost=average, currency=account.currency, entered_at=at)


def _depleted(account: Account, balance: Decimal, at: datetime) -> BalanceDepleted:
    return BalanceDepleted(account_id=account.account_id, balance=balance,
                           credit_limit=account.settings.credit_limit, currency=account.currency,
                           depleted_at=at, meters=account.account_meters(at), exempt_until=account.exempt_until(at))


def _restored(account: Account, balance: Decimal, at: datetime) -> BalanceRestored:
    return BalanceRestored(account_id=account.account_id, balance=balance,
                           restore_threshold=account.settings.restore_threshold, currency=account.currency,
                           restored_at=at, meters=account.account_meters(at))


def assess(status: BalanceStatus, account: Account, balance: Decimal, average: Decimal | None,
           at: datetime) -> BalanceAssessment:
    """The balance state after a change of the balance (or of the settings), and what to announce.

    Depleted at balance <= -credit limit. A depleted balance stays depleted until it rises above
    the restore threshold, whatever raised it (a payment, a subsidy, a credit adjustment); restored
    into a still low balance it also enters low.
    """
    settings = account.settings
    threshold = low_threshold(settings, average)
    if balance <= -settings.credit_limit:
        if status is BalanceStatus.DEPLETED:
            return BalanceAssessment(BalanceStatus.DEPLETED, ())
        return BalanceAssessment(BalanceStatus.DEPLETED, (_depleted(account, balance, at),))
    if status is BalanceStatus.DEPLETED:
        if balance <= settings.restore_threshold:
            return BalanceAssessment(BalanceStatus.DEPLETED, ())
        if balance < threshold:
            low = _low(account, balance, threshold, average, at)
            return BalanceAssessment(BalanceStatus.LOW, (_restored(account, balance, at), low))
        return BalanceAssessment(BalanceStatus.NORMAL, (_restored(account, balance, at),))
    if balance < threshold:
        if status is BalanceStatus.LOW:
            return BalanceAssessment(BalanceStatus.LOW, ())
        return BalanceAssessment(BalanceStatus.LOW, (_low(account, balance, threshold, average, at),))
    return BalanceAssessment(BalanceStatus.NORMAL, ())
