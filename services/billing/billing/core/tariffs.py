"""Tariffs as data: versions by effective date, each with step or time-of-use prices and fixed fees."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

from amiflow_schemas.events.tariffs import (
    RecurringCharge,
    RegisterPrice,
    TariffPublished,
    TariffTier,
    TierPeriod,
    check_prices,
)
from amiflow_schemas.primitives import Unit, Utility


class TariffError(ValueError):
    """A tariff or tariff version that cannot price anything correctly."""


@dataclass(frozen=True)
class TariffVersion:
    """The prices in force from ``effective_from`` until the next version's."""

    version_id: str
    effective_from: datetime
    tiers: tuple[TariffTier, ...]  # step prices; empty for a time-of-use version
    register_prices: tuple[RegisterPrice, ...]  # T1..T4 prices; empty for a step version
    fixed_daily_charge: Decimal  # per meter and local day
    recurring_charges: tuple[RecurringCharge, ...]  # per account and local month

    def __post_init__(self) -> None:
        # Prices are non-negative Decimals already: the pydantic parts refuse anything else.
        if self.effective_from.utcoffset() is None:
            raise TariffError(f"{self.version_id}: effective_from must be an aware datetime")
        try:
            check_prices(self.tiers, self.register_prices, self.fixed_daily_charge, self.recurring_charges)
        except ValueError as exc:
            raise TariffError(f"{self.version_id}: {exc}") from None

    @property
    def time_of_use(self) -> bool:
        """True when the version prices per register rather than by tiers."""
        return bool(self.register_prices)

    def register_price(self, register: str) -> Decimal | None:
        """The unit price of a time-of-use register, or None when the version has none for it."""
        return next((p.unit_price for p in self.register_prices if p.register == register), None)


@dataclass(frozen=True)
class Tariff:
    """A tariff's versions in effective order; its utility, unit, currency and tier period never change."""

    tariff_id: str
    utility: Utility
    unit: Unit
    currency: str
    tier_period: TierPeriod
    versions: tuple[TariffVersion, ...]

    def __post_init__(self) -> None:
        starts = [v.effective_from for v in self.versions]
        if any(a >= b for a, b in pairwise(starts)):
            raise TariffError(f"{self.tariff_id}: versions must take effect in strictly ascending order")
        ids = [v.version_id for v in self.versions]
        if len(ids) != len(set(ids)):
            raise TariffError(f"{self.tariff_id}: version ids repeat: {ids}")

    def version_at(self, at: datetime) -> TariffVersion | None:
        """The version in force at ``at``; None before the first one takes effect."""
        current = None
        for version in self.versions:
            if version.effective_from > at:
                break
            current = version
        return current

    def changes_within(self, start: datetime, end: datetime) -> tuple[datetime, ...]:
        """The instants strictly inside (start, end) at which another version takes effect."""
        return tuple(v.effective_from for v in self.versions if start < v.effective_from < end)


def version_of(published: TariffPublished) -> TariffVersion:
    """The version a TariffPublished event carries."""
    return TariffVersion(
        version_id=published.version_id,
        effective_from=published.effective_from,
        tiers=published.tiers,
        register_prices=published.register_prices,
        fixed_daily_charge=published.fixed_daily_charge,
        recurring_charges=published.recurring_charges,
    )


def evolve(tariff: Tariff | None, published: TariffPublished) -> Tariff:
    """The tariff with one more published version; TariffError when it contradicts the tariff."""
    version = version_of(published)
    if tariff is None:
        return Tariff(published.tariff_id, published.utility, published.unit, published.currency,
                      published.tier_period, (version,))
    fixed = (tariff.tariff_id, tariff.utility, tariff.unit, tariff.currency, tariff.tier_period)
    if fixed != (published.tariff_id, published.utility, published.unit, published.currency, published.tier_period):
        raise TariffError(f"{published.version_id}: utility, unit, currency and tier period are the tariff's own")
    versions = sorted((*tariff.versions, version), key=lambda v: v.effective_from)
    return replace(tariff, versions=tuple(versions))
