"""A month's e-bill as plain data: what the ledger says, ready to render (billing.md, statements)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from amiflow_schemas.events.billing import PaymentChannel
from amiflow_schemas.primitives import Unit, Utility, check_unit

from billing.statements.values import (
    require_aware,
    require_currency,
    require_decimal,
    require_money,
    require_text,
    total,
)


class CustomerKind(StrEnum):
    """Who holds the unified prepaid account."""

    HOUSEHOLD = "household"
    MERCHANT = "merchant"
    ROOM = "room"  # a rented room or dormitory bed, billed on its own meters


class ChargeBasis(StrEnum):
    """What one charge line prices."""

    TIER = "tier"  # one step of a tiered price; the line names the tier (1 = first step)
    TIME_OF_USE = "time_of_use"  # one tariff register (T1 sharp, T2 peak, T3 flat, T4 valley)
    FLAT = "flat"  # a single price per unit
    FIXED_DAILY = "fixed_daily"  # the meter service fee; the quantity counts days


class LedgerLineKind(StrEnum):
    """Ledger entries other than payments and metered charges."""

    ADJUSTMENT = "adjustment"  # AdjustmentPosted: re-rating after a corrected reading, either sign
    SUBSIDY = "subsidy"  # SubsidyGranted: a credit
    REFUND = "refund"  # RefundIssued: money paid back out of the account, a debit
    RECURRING_CHARGE = "recurring_charge"  # RecurringChargePosted, e.g. a property fee: a debit


@dataclass(frozen=True)
class BillingMonth:
    """A calendar month in the tenant's time zone."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.year <= 9998:  # the month after must exist too
            raise ValueError(f"no billing month {self.year}-{self.month}")

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def next_first_day(self) -> date:
        return date(self.year + self.month // 12, self.month % 12 + 1, 1)

    def days(self) -> tuple[date, ...]:
        """Every day of the month, in order."""
        count = (self.next_first_day - self.first_day).days
        return tuple(date.fromordinal(self.first_day.toordinal() + n) for n in range(count))

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and (day.year, day.month) == (self.year, self.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class Payment:
    """A PaymentReceived credited in the month."""

    paid_at: datetime
    channel: PaymentChannel
    provider_transaction_id: str
    amount: Decimal

    def __post_init__(self) -> None:
        require_aware(self.paid_at, "paid_at")
        require_text(self.provider_transaction_id, "provider_transaction_id")
        require_money(self.amount, "payment amount")
        if self.amount <= 0:
            raise ValueError(f"a payment is a credit above zero, got {self.amount}")


@dataclass(frozen=True)
class ChargeLine:
    """The month's charges of one service at one tier, register or fixed fee."""

    utility: Utility
    basis: ChargeBasis
    quantity: Decimal
    unit: Unit | None  # None only for a fixed daily fee, whose quantity counts days
    unit_price: Decimal
    # The posted total, not quantity x unit_price: cumulative rounding (billing.md, rating step
    # 4) makes the two differ by a cent now and then, and the bill must match the ledger.
    amount: Decimal
    tier: int | None = None
    register: str | None = None

    def __post_init__(self) -> None:
        require_decimal(self.quantity, "quantity")
        require_decimal(self.unit_price, "unit_price")
        require_money(self.amount, "charge amount")
        if self.quantity < 0 or self.unit_price < 0 or self.amount < 0:
            raise ValueError("a charge line has no negative quantity, price or amount")
        self._check_basis()

    def _check_basis(self) -> None:
        if (self.tier is not None) != (self.basis is ChargeBasis.TIER):
            raise ValueError("a tier line names its tier, and no other line does")
        if (self.register is not None) != (self.basis is ChargeBasis.TIME_OF_USE):
            raise ValueError("a time-of-use line names its register, and no other line does")
        if self.tier is not None and self.tier < 1:
            raise ValueError(f"tiers count from 1, got {self.tier}")
        if self.register is not None:
            require_text(self.register, "register")
        if self.basis is ChargeBasis.FIXED_DAILY:
            if self.unit is not None or self.quantity != self.quantity.to_integral_value():
                raise ValueError("a fixed daily fee counts whole days and has no unit")
        elif self.unit is None:
            raise ValueError(f"a {self.basis.value} line needs the unit of its quantity")
        else:
            check_unit(self.utility, self.unit)


@dataclass(frozen=True)
class LedgerLine:
    """An adjustment, subsidy, refund or recurring charge, signed as the balance sees it: credit > 0.

    That is DailySettled.adjustments_total's sign. AdjustmentPosted is signed like a charge
    (billing.md R4 posts -5.00 to give 5.00 back), so its line here carries -amount.
    """

    kind: LedgerLineKind
    posted_at: datetime
    description: str
    amount: Decimal

    def __post_init__(self) -> None:
        require_aware(self.posted_at, "posted_at")
        require_text(self.description, "description")
        require_money(self.amount, "ledger line amount")
        if self.amount == 0:
            raise ValueError("a ledger line of zero moves no money")
        credit = {LedgerLineKind.SUBSIDY: True, LedgerLineKind.REFUND: False,
                  LedgerLineKind.RECURRING_CHARGE: False}.get(self.kind)
        if credit is not None and (self.amount > 0) != credit:
            raise ValueError(f"a {self.kind.value} is a {'credit' if credit else 'debit'}, got {self.amount}")


@dataclass(frozen=True)
class DailyUsage:
    """One service's consumption on one local day (from DailySettled)."""

    day: date
    utility: Utility
    quantity: Decimal  # may be negative when a late correction lowered the day
    unit: Unit

    def __post_init__(self) -> None:
        if isinstance(self.day, datetime):
            raise TypeError("day is a local calendar date, not a datetime")
        require_decimal(self.quantity, "quantity")
        check_unit(self.utility, self.unit)


@dataclass(frozen=True)
class StatementTotals:
    """The ledger's own sums for the month, each section checked against its lines."""

    payments: Decimal
    charges: Decimal
    other: Decimal  # signed, credit > 0

    def __post_init__(self) -> None:
        for name in ("payments", "charges", "other"):
            require_money(getattr(self, name), f"{name} total")


@dataclass(frozen=True)
class MonthlyStatement:
    """One account's e-bill for one month; the renderers refuse it unless check_reconciles passes."""

    tenant_name: str
    account_id: str
    customer_name: str
    customer_kind: CustomerKind
    address: str  # street address, or building and room
    month: BillingMonth
    currency: str
    time_zone: str
    opening_balance: Decimal
    closing_balance: Decimal
    payments: tuple[Payment, ...]
    charges: tuple[ChargeLine, ...]
    other_lines: tuple[LedgerLine, ...]
    daily_usage: tuple[DailyUsage, ...]
    totals: StatementTotals

    def __post_init__(self) -> None:
        for name in ("tenant_name", "account_id", "customer_name", "address"):
            require_text(getattr(self, name), name)
        require_currency(self.currency)
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {self.time_zone!r}") from error
        require_money(self.opening_balance, "opening balance")
        require_money(self.closing_balance, "closing balance")
        units: dict[Utility, Unit] = {}
        for usage in self.daily_usage:
            # One unit per service, so a day's bar and the month's total mean the same thing.
            if units.setdefault(usage.utility, usage.unit) is not usage.unit:
                raise ValueError(f"{usage.utility.value} usage is given in two units")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def local_day(self, moment: datetime) -> date:
        """The tenant's calendar day a ledger instant falls on."""
        return moment.astimezone(self.zone).date()

    def charges_by_utility(self) -> dict[Utility, Decimal]:
        """The month's charges per service, in Utility order."""
        present = {line.utility for line in self.charges}
        return {u: total(c.amount for c in self.charges if c.utility is u) for u in Utility if u in present}

    def usage_by_utility(self) -> dict[Utility, tuple[Decimal, Unit]]:
        """The month's consumption per service with its unit, in Utility order."""
        units = {usage.utility: usage.unit for usage in self.daily_usage}
        return {u: (sum((d.quantity for d in self.daily_usage if d.utility is u), Decimal(0)), units[u])
                for u in Utility if u in units}


@dataclass(frozen=True)
class DailyCollections:
    """One report row: the payments of one local day through one channel."""

    day: date
    channel: PaymentChannel
    count: int
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("a payment count is never negative")
        require_money(self.amount, "collected amount")
        require_currency(self.currency)


@dataclass(frozen=True)
class Arrears:
    """One report row: an account whose balance is depleted, and since when."""

    account_id: str
    customer_name: str
    balance: Decimal
    currency: str
    depleted_on: date
    days_in_arrears: int  # whole local days from depleted_on to the report date
    last_payment_on: date | None  # None: the account was never paid
    last_payment_amount: Decimal | None

    def __post_init__(self) -> None:
        require_text(self.account_id, "account_id")
        require_money(self.balance, "balance")
        require_currency(self.currency)
        if self.days_in_arrears < 0:
            raise ValueError("days in arrears are never negative")
        if (self.last_payment_on is None) != (self.last_payment_amount is None):
            raise ValueError("a last payment has both a date and an amount")
        if self.last_payment_amount is not None:
            require_money(self.last_payment_amount, "last payment amount")


@dataclass(frozen=True)
class ConsumptionByGroup:
    """One report row: a service's consumption and charges in one customer group."""

    utility: Utility
    customer_group: str
    quantity: Decimal
    unit: Unit
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        require_text(self.customer_group, "customer_group")
        require_decimal(self.quantity, "quantity")
        check_unit(self.utility, self.unit)
        require_money(self.amount, "amount")
        require_currency(self.currency)
