"""Builders for the billing core's unit tests: accounts, tariffs and readings in Asia/Shanghai."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.accounts import AccountSettings, CustomerKind, ExemptionWindow, LinkReason
from amiflow_schemas.events.tariffs import RecurringCharge, RegisterPrice, TariffPublished, TariffTier, TierPeriod
from amiflow_schemas.primitives import Unit, Utility
from billing.core import accounts, tariffs
from billing.core.accounts import Account
from billing.core.rating import MeterReading
from billing.core.tariffs import Tariff

SHANGHAI = ZoneInfo("Asia/Shanghai")
OPENED = datetime(2025, 12, 1, tzinfo=SHANGHAI)
NAMESPACE = UUID("0b6d1f7e-3c1a-4c55-9f43-2a6c1d1b7e01")
WATER_TIERS = (("180", "5.00"), ("260", "7.00"), (None, "9.00"))  # billing.md R1


def event_id(name: str) -> UUID:
    """A stable UUID named after what it identifies."""
    return uuid5(NAMESPACE, name)


def settings(credit_limit: str = "0", low_amount: str = "20.00", low_days: int = 3, restore: str = "0",
             factor: str = "1", exemptions: Sequence[ExemptionWindow] = ()) -> AccountSettings:
    """Account settings with the billing.md B1 low-balance rule unless told otherwise."""
    return AccountSettings(credit_limit=Decimal(credit_limit), low_balance_amount=Decimal(low_amount),
                           low_balance_days=low_days, restore_threshold=Decimal(restore),
                           tier_size_factor=Decimal(factor), cut_off_policy_id=None, exemptions=tuple(exemptions))


def make_account(account_id: str = "ACC-1", meters: Sequence[tuple[str, Utility, str]] = (
        ("WM-1", Utility.WATER, "water"),), opened_at: datetime = OPENED, time_zone: str = "Asia/Shanghai",
                 **settings_args: Any) -> Account:
    """An account folded from its opening and meter links, each meter as (meter id, utility, tariff id)."""
    opened = accounts.open_account(account_id, "CUST-1", CustomerKind.HOUSEHOLD, "CNY", time_zone,
                                   date(2025, 3, 15), settings(**settings_args), opened_at)
    account = accounts.evolve(None, opened)
    for meter_id, utility, tariff_id in meters:
        account = accounts.evolve(account, accounts.link_meter(account, meter_id, utility, tariff_id, opened_at,
                                                               LinkReason.CONNECTED))
    return account


def published(version_id: str, effective_from: datetime, *, tariff_id: str = "water",
              utility: Utility = Utility.WATER, unit: Unit = Unit.M3,
              tiers: Sequence[tuple[str | None, str]] = WATER_TIERS, registers: Sequence[tuple[str, str]] = (),
              period: TierPeriod = TierPeriod.CALENDAR_YEAR, fixed: str = "0",
              recurring: Sequence[tuple[str, str]] = ()) -> TariffPublished:
    """A TariffPublished: tiers as (up to, price), time-of-use prices as (register, price)."""
    return TariffPublished(
        tariff_id=tariff_id, version_id=version_id, utility=utility, unit=unit, currency="CNY", tier_period=period,
        effective_from=effective_from,
        tiers=tuple(TariffTier(up_to=None if up is None else Decimal(up), unit_price=Decimal(price))
                    for up, price in tiers),
        register_prices=tuple(RegisterPrice(register=r, unit_price=Decimal(p)) for r, p in registers),
        fixed_daily_charge=Decimal(fixed),
        recurring_charges=tuple(RecurringCharge(name=n, amount=Decimal(a)) for n, a in recurring),
        published_at=effective_from - timedelta(days=30), description=None,
    )


def make_tariff(*versions: TariffPublished, **kwargs: Any) -> Tariff:
    """A tariff folded from versions; one version from 2025-01-01 built with ``kwargs`` when none given."""
    chosen = versions or (published("v2025", datetime(2025, 1, 1, tzinfo=SHANGHAI), **kwargs),)
    tariff = None
    for version in chosen:
        tariff = tariffs.evolve(tariff, version)
    assert tariff is not None
    return tariff


def make_reading(start: datetime, end: datetime, quantity: str, *, meter_id: str = "WM-1",
                 utility: Utility = Utility.WATER, unit: Unit = Unit.M3,
                 registers: Sequence[tuple[str, str]] = (), name: str | None = None) -> MeterReading:
    """A billable span; its event id is derived from ``name`` (or the meter and end)."""
    return MeterReading(event_id(name or f"{meter_id}@{end.isoformat()}"), meter_id, utility, start, end,
                        Decimal(quantity), unit, tuple((r, Decimal(q)) for r, q in registers))


@pytest.fixture(scope="session")
def account() -> Callable[..., Account]:
    """Build an account: ``account(meters=[("WM-1", Utility.WATER, "water")], factor="1.5")``."""
    return make_account


@pytest.fixture(scope="session")
def tariff() -> Callable[..., Tariff]:
    """Build a tariff: ``tariff(tiers=[(None, "0.4883")])`` or ``tariff(published(...), published(...))``."""
    return make_tariff


@pytest.fixture(scope="session")
def reading() -> Callable[..., MeterReading]:
    """Build a reading span: ``reading(start, end, "10.00")``."""
    return make_reading



@pytest.fixture(scope="session")
def version() -> Callable[..., TariffPublished]:
    """Build a published tariff version: ``version("v2", effective_from, tiers=[(None, "5.50")])``."""
    return published
