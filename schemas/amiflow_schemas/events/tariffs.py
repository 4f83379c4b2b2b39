"""Tariffs as data, versioned by effective date (billing.md "Tariffs").

Each ``TariffPublished`` carries one version whole, so a consumer that reads the tariff topic from
the start knows every price that was ever in force, and rating can be replayed exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, ClassVar, Self

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from amiflow_schemas.payload import EventPayload, PayloadPart, shadowing_abc_register
from amiflow_schemas.primitives import (
    CurrencyCode,
    Identifier,
    NonNegativeDecimal,
    PositiveDecimal,
    RegisterName,
    Text,
    Unit,
    Utility,
    check_unit,
)

ChargeName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""A recurring charge's name as printed on a bill, e.g. ``property fee``."""

TIME_OF_USE_REGISTERS: dict[str, str] = {"T1": "sharp", "T2": "peak", "T3": "flat", "T4": "valley"}
"""Forward active energy per tariff register, DL/T 645 DIs 00010100..00010400."""


class TierPeriod(StrEnum):
    """The period whose cumulative quantity the tier thresholds apply to; it resets at local midnight."""

    CALENDAR_YEAR = "calendar_year"
    BILLING_YEAR = "billing_year"  # from the anniversary of the account's billing-year start
    MONTH = "month"


class TariffTier(PayloadPart):
    """One step of a step price: up to a cumulative quantity of the tier period, at a unit price."""

    up_to: PositiveDecimal | None  # the cumulative quantity where the tier ends; None for the last
    unit_price: NonNegativeDecimal


with shadowing_abc_register():

    class RegisterPrice(PayloadPart):
        """The unit price of one time-of-use register (T1 sharp, T2 peak, T3 flat, T4 valley)."""

        # Field() keeps it required: without it pydantic takes ABCMeta.register as the default.
        register: RegisterName = Field()
        unit_price: NonNegativeDecimal


class RecurringCharge(PayloadPart):
    """A monthly charge taken from the same account, e.g. a property fee."""

    name: ChargeName
    amount: PositiveDecimal


def is_whole_cents(amount: Decimal) -> bool:
    """True when ``amount`` has no fraction of a cent (0.01), e.g. 1.50 or 1.500 but not 1.505."""
    # Read off the digits rather than quantize: quantize raises on numbers beyond the precision.
    _, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):
        return False  # NaN or infinity
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return exponent + trailing_zeros >= -2 or not any(digits)


def check_prices(
    tiers: Sequence[TariffTier],
    register_prices: Sequence[RegisterPrice],
    fixed_daily_charge: Decimal,
    recurring_charges: Sequence[RecurringCharge],
) -> None:
    """Raise ValueError unless the price components of one tariff version are coherent."""
    if bool(tiers) == bool(register_prices):
        raise ValueError("a tariff version prices by tiers or by time-of-use registers, exactly one")
    bounds = [tier.up_to for tier in tiers]
    if tiers and (bounds[-1] is not None or None in bounds[:-1]):
        raise ValueError("every tier but the last has an upper bound; the last has none")
    finite = [bound for bound in bounds if bound is not None]
    if any(lower >= upper for lower, upper in pairwise(finite)):
        raise ValueError(f"tier bounds must ascend: {[str(b) for b in finite]}")
    registers = [price.register for price in register_prices]
    if len(registers) != len(set(registers)) or not set(registers) <= set(TIME_OF_USE_REGISTERS):
        raise ValueError(f"time-of-use registers are distinct names among T1..T4: {registers}")
    names = [charge.name for charge in recurring_charges]
    if len(names) != len(set(names)):
        raise ValueError(f"recurring charge names repeat: {names}")
    money = [fixed_daily_charge, *(charge.amount for charge in recurring_charges)]
    if not all(is_whole_cents(amount) for amount in money):
        raise ValueError("fixed and recurring charges are money: no fraction of a cent")


class TariffPublished(EventPayload):
    """One version of a tariff, in force from ``effective_from`` until the next version's."""

    EVENT_TYPE: ClassVar[str] = "TariffPublished"
    EVENT_VERSION: ClassVar[int] = 1

    tariff_id: Identifier
    version_id: Identifier  # unique across the tariff's versions; charge lines name it
    utility: Utility
    unit: Unit  # what the unit prices are per; rating refuses consumption in another unit
    currency: CurrencyCode
    tier_period: TierPeriod  # the same in every version of a tariff
    effective_from: AwareDatetime
    tiers: Annotated[tuple[TariffTier, ...], Field(max_length=16)]
    register_prices: Annotated[tuple[RegisterPrice, ...], Field(max_length=4)]
    fixed_daily_charge: NonNegativeDecimal  # per meter and local day, posted by the settlement
    recurring_charges: Annotated[tuple[RecurringCharge, ...], Field(max_length=16)]
    published_at: AwareDatetime
    description: Text | None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        check_unit(self.utility, self.unit)
        check_prices(self.tiers, self.register_prices, self.fixed_daily_charge, self.recurring_charges)
        return self
