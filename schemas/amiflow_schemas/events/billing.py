"""The prepaid ledger and balance states (billing.md). Money is Decimal ``amount`` + ``currency``."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, PositiveInt, model_validator

from amiflow_schemas.events.tariffs import ChargeName
from amiflow_schemas.payload import EventPayload, PayloadPart, shadowing_abc_register
from amiflow_schemas.primitives import (
    CurrencyCode,
    ExactDecimal,
    Identifier,
    NonNegativeDecimal,
    PositiveDecimal,
    RegisterName,
    Text,
    TimeZoneName,
    Unit,
    Utility,
    check_unit,
)


class ChargeKind(StrEnum):
    """What a charge pays for."""

    CONSUMPTION = "consumption"  # rated from a ReadingValidated
    FIXED_DAILY = "fixed_daily"  # the meter service fee, posted by the daily settlement


with shadowing_abc_register():

    class ChargeLine(PayloadPart):
        """One priced slice of a charge: a tier or a time-of-use register of one tariff version."""

        tariff_version_id: Identifier
        tier: PositiveInt | None  # 1 = first step; None for flat and time-of-use prices
        # Field() keeps it required: without it pydantic takes ABCMeta.register as the default.
        register: RegisterName | None = Field()  # T1..T4 for time-of-use prices
        quantity: NonNegativeDecimal
        unit_price: NonNegativeDecimal
        cost: NonNegativeDecimal  # quantity x unit_price, exact and unrounded


class ChargeApplied(EventPayload):
    """A debit on the prepaid account for consumption or a fixed daily fee."""

    EVENT_TYPE: ClassVar[str] = "ChargeApplied"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    kind: ChargeKind
    meter_id: Identifier
    utility: Utility
    reading_event_id: UUID | None  # the ReadingValidated rated; None for a fixed daily fee
    period_start: AwareDatetime
    period_end: AwareDatetime
    quantity: NonNegativeDecimal | None
    quantity_unit: Unit | None
    lines: Annotated[tuple[ChargeLine, ...], Field(max_length=64)]
    # Posted amount = round2(C_after) - round2(C_before) of the tier period's exact cost C, so
    # a period's charges add up to its rounded exact total (billing.md, rating step 4).
    amount: NonNegativeDecimal
    currency: CurrencyCode
    tier_period_cost: NonNegativeDecimal | None  # C_after, exact; None for a fixed daily fee

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.period_start >= self.period_end:
            raise ValueError("period_start must be before period_end")
        rated = self.kind is ChargeKind.CONSUMPTION
        facts = (self.reading_event_id, self.quantity, self.quantity_unit, self.tier_period_cost)
        if rated and (any(f is None for f in facts) or not self.lines):
            raise ValueError("a consumption charge names its reading, quantity, unit, lines, cost")
        if not rated and any(f is not None for f in facts):
            raise ValueError("a fixed daily charge has no reading, quantity or tier cost")
        if self.quantity_unit is not None:
            check_unit(self.utility, self.quantity_unit)
        return self


class PaymentChannel(StrEnum):
    """Where a payment came from."""

    WECHAT_PAY = "wechat_pay"
    ALIPAY = "alipay"
    BANK = "bank"
    CASH = "cash"
    OPERATOR = "operator"  # entered at a service counter


class PaymentReceived(EventPayload):
    """A credit on the prepaid account; (channel, provider_transaction_id) is credited once."""

    EVENT_TYPE: ClassVar[str] = "PaymentReceived"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    channel: PaymentChannel
    provider_transaction_id: Identifier
    amount: PositiveDecimal
    currency: CurrencyCode
    paid_at: AwareDatetime  # the provider's payment time
    # Optional additions within v1: a line of a batch recharge, idempotent by (batch_id, line_number).
    batch_id: Identifier | None = None
    line_number: PositiveInt | None = None

    @model_validator(mode="after")
    def _batch_line(self) -> Self:
        if (self.batch_id is None) != (self.line_number is None):
            raise ValueError("batch_id and line_number are given together or not at all")
        return self


class RefundReason(StrEnum):
    """Why money went back to the customer."""

    MOVE_OUT = "move_out"  # the positive balance at move-out (billing.md)
    OPERATOR = "operator"


class RefundIssued(EventPayload):
    """Money paid back out of the prepaid account: a debit on the balance."""

    EVENT_TYPE: ClassVar[str] = "RefundIssued"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    reason: RefundReason
    amount: PositiveDecimal
    currency: CurrencyCode
    refunded_at: AwareDatetime
    operator_id: Identifier | None  # who issued it; None when billing did (move-out)


class SubsidyGranted(EventPayload):
    """A credit from a subsidy programme; one line of a batch, idempotent by (batch_id, line_number)."""

    EVENT_TYPE: ClassVar[str] = "SubsidyGranted"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    batch_id: Identifier
    line_number: PositiveInt
    amount: PositiveDecimal
    currency: CurrencyCode
    reason: Text
    granted_at: AwareDatetime


class AdjustmentReason(StrEnum):
    """Why the ledger took an adjustment."""

    RE_RATED = "re_rated"  # a ReadingCorrected changed consumption already charged (billing.md R4)
    BALANCE_TRANSFER = "balance_transfer"  # room change: the balance moves to another account
    MANUAL = "manual"  # an operator's correction


class AdjustmentPosted(EventPayload):
    """A signed change to what the account was charged; the entries it corrects stay as they were."""

    EVENT_TYPE: ClassVar[str] = "AdjustmentPosted"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    reason: AdjustmentReason
    # Signed like a charge: > 0 takes money from the account, < 0 gives it back. billing.md R4:
    # an estimate charged 15.00 and re-rated to 10.00 posts -5.00. (DailySettled.adjustments_total
    # is signed the other way, credit > 0, so it adds -amount.)
    amount: ExactDecimal
    currency: CurrencyCode
    posted_at: AwareDatetime
    meter_id: Identifier | None
    utility: Utility | None
    correction_event_id: UUID | None  # the ReadingCorrected a re-rating follows
    quantity: ExactDecimal | None  # signed change of the consumption charged
    quantity_unit: Unit | None
    # A re-rating prices the corrected reading and every one rated after it in its tier periods
    # again: lines are the new prices, replaced_lines what was charged for them before.
    lines: Annotated[tuple[ChargeLine, ...], Field(max_length=64)]
    replaced_lines: Annotated[tuple[ChargeLine, ...], Field(max_length=64)]
    counterpart_account_id: Identifier | None  # the other side of a balance transfer
    operator_id: Identifier | None
    note: Text | None

    @model_validator(mode="after")
    def _fits_reason(self) -> Self:
        rerating = (self.meter_id, self.utility, self.correction_event_id, self.quantity, self.quantity_unit)
        if self.reason is AdjustmentReason.RE_RATED and any(f is None for f in rerating):
            raise ValueError("a re-rating names its meter, utility, correction, quantity and unit")
        if self.reason is not AdjustmentReason.RE_RATED and (self.lines or self.replaced_lines):
            raise ValueError("only a re-rating carries charge lines")
        if (self.reason is AdjustmentReason.BALANCE_TRANSFER) != (self.counterpart_account_id is not None):
            raise ValueError("counterpart_account_id is given exactly for a balance transfer")
        if self.reason is AdjustmentReason.MANUAL and (self.operator_id is None or self.note is None):
            raise ValueError("a manual adjustment names its operator and says why")
        if self.quantity_unit is not None:
            if self.utility is None:
                raise ValueError("a quantity needs its utility")
            check_unit(self.utility, self.quantity_unit)
        return self


class RecurringChargePosted(EventPayload):
    """A tariff's monthly charge (e.g. a property fee), posted by the settlement of the month's first day."""

    EVENT_TYPE: ClassVar[str] = "RecurringChargePosted"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    tariff_id: Identifier
    tariff_version_id: Identifier
    charge_name: ChargeName
    month: date  # the first day of the local month paid for
    settlement_date: date  # the local day whose settlement posted it
    amount: PositiveDecimal
    currency: CurrencyCode

    @model_validator(mode="after")
    def _first_of_month(self) -> Self:
        if self.month.day != 1:
            raise ValueError("month is the first day of a month")
        return self


class UtilityConsumption(PayloadPart):
    """A day's consumption of one service on an account."""

    utility: Utility
    quantity: ExactDecimal  # may be negative when a late correction lowers the day
    unit: Unit


class DailySettled(EventPayload):
    """The close of one local calendar day of one account; exactly once per (account, date)."""

    EVENT_TYPE: ClassVar[str] = "DailySettled"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    settlement_date: date  # the tenant's local calendar day, not a UTC day
    time_zone: TimeZoneName
    currency: CurrencyCode
    opening_balance: ExactDecimal
    charges_total: NonNegativeDecimal  # consumption measured on this day or later
    fixed_charges_total: NonNegativeDecimal  # the meter service fees (ChargeApplied fixed_daily)
    payments_total: NonNegativeDecimal
    # Everything else the ledger took that day, signed (credit > 0): consumption of earlier,
    # already settled days (late readings), re-ratings, refunds, subsidies, recurring monthly
    # charges, balance transfers.
    adjustments_total: ExactDecimal
    closing_balance: ExactDecimal
    consumption: Annotated[tuple[UtilityConsumption, ...], Field(max_length=len(Utility))]

    @model_validator(mode="after")
    def _balances_add_up(self) -> Self:
        # The settlement must equal a recomputation from the ledger; an event whose own
        # numbers disagree would make that check meaningless.
        expected = (
            self.opening_balance
            + self.payments_total
            + self.adjustments_total
            - self.charges_total
            - self.fixed_charges_total
        )
        if expected != self.closing_balance:
            raise ValueError(f"closing_balance {self.closing_balance} should be {expected}")
        for part in self.consumption:
            check_unit(part.utility, part.unit)
        return self


class AccountMeter(PayloadPart):
    """A meter paid for by the account, so commands knows what a balance state concerns."""

    meter_id: Identifier
    utility: Utility


AccountMeters = Annotated[tuple[AccountMeter, ...], Field(max_length=256)]


class BalanceLow(EventPayload):
    """The balance fell below the low threshold: max(low amount, low days x daily cost)."""

    EVENT_TYPE: ClassVar[str] = "BalanceLow"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    balance: ExactDecimal
    threshold: ExactDecimal
    average_daily_cost: NonNegativeDecimal | None  # of the last 7 days; None without history
    currency: CurrencyCode
    entered_at: AwareDatetime

    @model_validator(mode="after")
    def _below_threshold(self) -> Self:
        if self.balance >= self.threshold:
            raise ValueError("a low balance is below its threshold")
        return self


class BalanceDepleted(EventPayload):
    """The balance reached -credit_limit; the commands service decides what to cut off."""

    EVENT_TYPE: ClassVar[str] = "BalanceDepleted"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    balance: ExactDecimal
    credit_limit: NonNegativeDecimal
    currency: CurrencyCode
    depleted_at: AwareDatetime
    meters: AccountMeters
    # Optional addition within v1: the end of an exemption window in force when the balance was
    # depleted. Billing still reports the state; the commands service must not cut off before it.
    exempt_until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _depleted(self) -> Self:
        if self.balance > -self.credit_limit:
            raise ValueError("a depleted balance is at or below -credit_limit")
        return self


class BalanceRestored(EventPayload):
    """A payment lifted a depleted balance above the restore threshold."""

    EVENT_TYPE: ClassVar[str] = "BalanceRestored"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    balance: ExactDecimal
    restore_threshold: ExactDecimal
    currency: CurrencyCode
    restored_at: AwareDatetime
    meters: AccountMeters

    @model_validator(mode="after")
    def _restored(self) -> Self:
        if self.balance <= self.restore_threshold:
            raise ValueError("a restored balance is above its restore threshold")
        return self
