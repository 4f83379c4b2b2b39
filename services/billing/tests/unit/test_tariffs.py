"""Tariffs are versioned data; a version that cannot price correctly is refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.tariffs import RecurringCharge, RegisterPrice, TariffTier, TierPeriod
from amiflow_schemas.primitives import Unit, Utility
from billing.core import tariffs
from billing.core.tariffs import TariffError, TariffVersion
from pydantic import ValidationError

SHANGHAI = ZoneInfo("Asia/Shanghai")
JAN = datetime(2026, 1, 1, tzinfo=SHANGHAI)
JUL = datetime(2026, 7, 1, tzinfo=SHANGHAI)
Builder = Callable[..., Any]


def test_the_version_in_force_is_the_latest_that_took_effect(tariff: Builder, version: Builder) -> None:
    water = tariff(version("jul", JUL), version("jan", JAN))  # published out of order, kept in effective order

    assert [v.version_id for v in water.versions] == ["jan", "jul"]
    assert water.version_at(JAN - timedelta(seconds=1)) is None
    assert water.version_at(JUL - timedelta(seconds=1)).version_id == "jan"
    assert water.version_at(JUL).version_id == "jul"
    assert water.changes_within(JAN, JUL + timedelta(days=1)) == (JUL,)


def test_a_version_cannot_change_the_tariffs_unit_currency_or_tier_period(tariff: Builder, version: Builder) -> None:
    water = tariff(version("jan", JAN))

    with pytest.raises(TariffError, match="tier period"):
        tariffs.evolve(water, version("jul", JUL, period=TierPeriod.MONTH))
    with pytest.raises(TariffError, match="strictly ascending"):
        tariffs.evolve(water, version("jan-again", JAN))


@pytest.mark.parametrize(("tiers", "registers", "fixed", "message"), [
    ([("260", "5.00"), ("180", "7.00"), (None, "9.00")], [], "0", "ascend"),
    ([("180", "5.00"), ("260", "7.00")], [], "0", "the last has none"),
    ([(None, "5.00"), (None, "7.00")], [], "0", "every tier but the last"),
    ([], [], "0", "exactly one"),
    ([(None, "5.00")], [("T1", "1.00")], "0", "exactly one"),
    ([], [("T5", "1.00")], "0", "T1..T4"),
    ([], [("T1", "1.00"), ("T1", "2.00")], "0", "T1..T4"),
    ([(None, "5.00")], [], "0.005", "fraction of a cent"),
])
def test_incoherent_prices_are_refused_by_the_event_and_by_the_core(version: Builder, tiers: Any, registers: Any,
                                                                    fixed: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        version("bad", JAN, tiers=tiers, registers=registers, fixed=fixed)
    tier_parts = tuple(TariffTier(up_to=None if up is None else Decimal(up), unit_price=Decimal(p)) for up, p in tiers)
    register_parts = tuple(RegisterPrice(register=r, unit_price=Decimal(p)) for r, p in registers)
    with pytest.raises(TariffError, match=message):
        TariffVersion("bad", JAN, tier_parts, register_parts, Decimal(fixed), ())


def test_negative_prices_are_refused() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        TariffTier(up_to=None, unit_price=Decimal("-1"))


def test_recurring_charge_names_are_unique_and_a_version_needs_an_aware_start() -> None:
    fee = RecurringCharge(name="property fee", amount=Decimal("35.00"))
    flat = (TariffTier(up_to=None, unit_price=Decimal("5")),)

    with pytest.raises(TariffError, match="repeat"):
        TariffVersion("v", JAN, flat, (), Decimal(0), (fee, fee))
    with pytest.raises(TariffError, match="aware"):
        TariffVersion("v", datetime(2026, 1, 1), flat, (), Decimal(0), ())


def test_a_tariffs_unit_must_measure_its_utility(version: Builder) -> None:
    with pytest.raises(ValidationError, match="not a water unit"):
        version("v", JAN, utility=Utility.WATER, unit=Unit.KWH)
