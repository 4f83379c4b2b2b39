"""Rating a validated reading: tiers, version changes, tier period resets, time-of-use (billing.md R1-R3)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.billing import ChargeKind
from amiflow_schemas.events.readings import ReadingValidated
from amiflow_schemas.events.tariffs import TierPeriod
from amiflow_schemas.primitives import Unit, Utility
from billing.core.accounts import Account
from billing.core.periods import day_bounds, tier_period
from billing.core.rating import MeterReading, Rating, RatingError, TierPeriodState, rate_reading, reading_of
from billing.core.tariffs import Tariff

SHANGHAI = ZoneInfo("Asia/Shanghai")
JAN_1 = datetime(2026, 1, 1, tzinfo=SHANGHAI)

Builder = Callable[..., Any]


def _rate_all(readings: list[MeterReading], account: Account, tariff: Tariff) -> list[Rating]:
    periods: dict[datetime, TierPeriodState] = {}
    ratings = []
    for reading in readings:
        rating = rate_reading(reading, account, tariff, periods)
        periods.update(rating.periods)
        ratings.append(rating)
    return ratings


def _lines(rating: Rating) -> list[tuple[int | None, str | None, Decimal, Decimal]]:
    assert rating.charge is not None
    return [(line.tier, line.register, line.quantity, line.unit_price) for line in rating.charge.lines]


def test_r1_tier_boundary_splits_one_reading_across_two_prices(account: Builder, tariff: Builder,
                                                               reading: Builder) -> None:
    earlier = reading(JAN_1, JAN_1 + timedelta(days=100), "175.00")
    new = reading(JAN_1 + timedelta(days=100), JAN_1 + timedelta(days=101), "10.00")

    first, second = _rate_all([earlier, new], account(), tariff())

    assert first.amount == Decimal("875.00")
    assert second.amount == Decimal("60.00")
    assert _lines(second) == [(1, None, Decimal("5.00"), Decimal("5.00")), (2, None, Decimal("5.00"), Decimal("7.00"))]
    assert second.charge is not None and second.charge.kind is ChargeKind.CONSUMPTION
    assert second.charge.tier_period_cost == Decimal("935.0000")
    assert second.charge.reading_event_id == new.reading_event_id


def test_r2_cumulative_rounding_posts_the_rounded_running_total_not_each_reading_rounded(
        account: Builder, tariff: Builder, reading: Builder) -> None:
    electricity = tariff(tariff_id="power", utility=Utility.ELECTRICITY, unit=Unit.KWH, tiers=[(None, "0.4883")])
    hours = [JAN_1 + timedelta(hours=h) for h in range(4)]
    spans = [reading(a, b, "1.00", meter_id="EM-1", utility=Utility.ELECTRICITY, unit=Unit.KWH)
             for a, b in pairwise(hours)]

    ratings = _rate_all(spans, account(meters=[("EM-1", Utility.ELECTRICITY, "power")]), electricity)

    assert [r.amount for r in ratings] == [Decimal("0.49"), Decimal("0.49"), Decimal("0.48")]
    assert [r.charge.tier_period_cost for r in ratings if r.charge] == [
        Decimal("0.4883"), Decimal("0.9766"), Decimal("1.4649")]


def test_r3_a_version_change_inside_the_span_prices_each_part_pro_rata_by_time(
        account: Builder, tariff: Builder, version: Builder, reading: Builder) -> None:
    flat = tariff(version("w2026", JAN_1, tiers=[(None, "5.00")]),
                  version("w2026-07", datetime(2026, 7, 1, tzinfo=SHANGHAI), tiers=[(None, "5.50")]))
    span = reading(datetime(2026, 6, 30, 12, tzinfo=SHANGHAI), datetime(2026, 7, 1, 12, tzinfo=SHANGHAI), "2.40")

    rating = rate_reading(span, account(), flat, {})

    assert rating.amount == Decimal("12.60")
    assert rating.charge is not None
    assert [(line.tariff_version_id, line.quantity, line.cost) for line in rating.charge.lines] == [
        ("w2026", Decimal("1.20"), Decimal("6.0000")), ("w2026-07", Decimal("1.20"), Decimal("6.6000"))]


def test_the_tier_period_resets_at_local_new_year_not_at_utc_new_year(account: Builder, tariff: Builder,
                                                                       reading: Builder) -> None:
    new_year = datetime(2027, 1, 1, tzinfo=SHANGHAI)
    year = reading(JAN_1, new_year - timedelta(hours=4), "300")
    crossing = reading(new_year - timedelta(hours=4), new_year + timedelta(hours=4), "8")  # all of it in 2026 UTC

    _, rating = _rate_all([year, crossing], account(), tariff())

    # 4 m3 at the third tier of 2026, 4 m3 at the first tier of 2027.
    assert _lines(rating) == [(3, None, Decimal("4"), Decimal("9.00")), (1, None, Decimal("4"), Decimal("5.00"))]
    assert rating.amount == Decimal("56.00")
    assert rating.periods[new_year] == TierPeriodState(new_year, datetime(2028, 1, 1, tzinfo=SHANGHAI),
                                                       Decimal("4"), Decimal("20.00"))
    assert rating.periods[JAN_1].quantity == Decimal("304")


def test_a_larger_household_gets_proportionally_larger_tiers(account: Builder, tariff: Builder,
                                                             reading: Builder) -> None:
    large = account(factor="1.5")  # tiers end at 270 and 390 m3
    earlier = reading(JAN_1, JAN_1 + timedelta(days=100), "265")
    new = reading(JAN_1 + timedelta(days=100), JAN_1 + timedelta(days=101), "10")

    _, rating = _rate_all([earlier, new], large, tariff())

    assert rating.amount == Decimal("60.00")


def test_a_span_across_a_daylight_saving_change_is_shared_by_elapsed_time_not_wall_time(
        account: Builder, tariff: Builder, reading: Builder) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    monthly = tariff(tiers=[(None, "1.00")], period=TierPeriod.MONTH)
    april = datetime(2026, 4, 1, tzinfo=berlin)
    # 28 March 00:00 to 2 April 00:00 is 119 elapsed hours: clocks went forward on 29 March.
    span = reading(datetime(2026, 3, 28, tzinfo=berlin), datetime(2026, 4, 2, tzinfo=berlin), "119")

    rating = rate_reading(span, account(time_zone="Europe/Berlin"), monthly, {})

    assert rating.periods[datetime(2026, 3, 1, tzinfo=berlin)].quantity == Decimal("95")
    assert rating.periods[april].quantity == Decimal("24")


def test_time_of_use_prices_each_register_at_its_own_price(account: Builder, tariff: Builder,
                                                           reading: Builder) -> None:
    tou = tariff(tariff_id="power-tou", utility=Utility.ELECTRICITY, unit=Unit.KWH, tiers=(), period=TierPeriod.MONTH,
                 registers=[("T1", "1.00"), ("T2", "0.80"), ("T3", "0.50"), ("T4", "0.30")])
    span = reading(JAN_1, JAN_1 + timedelta(days=1), "10", meter_id="EM-1", utility=Utility.ELECTRICITY,
                   unit=Unit.KWH, registers=[("T4", "4"), ("T1", "1"), ("T3", "3"), ("T2", "2")])

    rating = rate_reading(span, account(meters=[("EM-1", Utility.ELECTRICITY, "power-tou")]), tou, {})

    assert rating.amount == Decimal("5.30")
    assert _lines(rating) == [(None, "T1", Decimal("1"), Decimal("1.00")), (None, "T2", Decimal("2"), Decimal("0.80")),
                              (None, "T3", Decimal("3"), Decimal("0.50")), (None, "T4", Decimal("4"), Decimal("0.30"))]


def test_a_time_of_use_tariff_refuses_a_reading_without_registers(account: Builder, tariff: Builder,
                                                                  reading: Builder) -> None:
    tou = tariff(tariff_id="power-tou", utility=Utility.ELECTRICITY, unit=Unit.KWH, tiers=(),
                 registers=[("T2", "0.80"), ("T4", "0.30")])
    span = reading(JAN_1, JAN_1 + timedelta(days=1), "10", meter_id="EM-1", utility=Utility.ELECTRICITY, unit=Unit.KWH)

    with pytest.raises(RatingError, match="per-register consumption"):
        rate_reading(span, account(), tou, {})


def test_zero_consumption_posts_no_charge(account: Builder, tariff: Builder, reading: Builder) -> None:
    rating = rate_reading(reading(JAN_1, JAN_1 + timedelta(hours=1), "0"), account(), tariff(), {})

    assert rating.charge is None and rating.amount == 0


def test_consumption_in_another_unit_than_the_tariff_is_refused(account: Builder, tariff: Builder,
                                                                reading: Builder) -> None:
    heat = tariff(tariff_id="heat", utility=Utility.HEAT, unit=Unit.GJ)
    span = reading(JAN_1, JAN_1 + timedelta(hours=1), "1", meter_id="HM-1", utility=Utility.HEAT, unit=Unit.KWH)

    with pytest.raises(RatingError, match="in GJ"):
        rate_reading(span, account(), heat, {})


def test_a_span_before_the_first_tariff_version_is_refused(account: Builder, tariff: Builder,
                                                           reading: Builder) -> None:
    span = reading(datetime(2024, 12, 31, tzinfo=SHANGHAI), datetime(2025, 1, 2, tzinfo=SHANGHAI), "1")

    with pytest.raises(RatingError, match="no version in force"):
        rate_reading(span, account(), tariff(), {})


def test_a_reading_validated_event_becomes_a_billable_span_unless_it_has_no_consumption() -> None:
    document: dict[str, Any] = {
        "meter_id": "EM-1", "utility": "electricity", "measured_at": JAN_1 + timedelta(hours=1),
        "registers": [{"register": "total", "value": "10", "unit": "kWh"}], "consumption": "2",
        "consumption_unit": "kWh", "previous_measured_at": JAN_1, "status": "actual", "estimation_method": None,
        "source_event_id": "00000000-0000-4000-8000-000000000001",
        "register_consumption": [{"register": "T1", "value": "0.5", "unit": "kWh"},
                                 {"register": "T3", "value": "1.5", "unit": "kWh"},
                                 {"register": "total", "value": "2", "unit": "kWh"}],
    }
    event_id = ReadingValidated.model_validate(document).source_event_id

    span = reading_of(event_id, ReadingValidated.model_validate(document))
    first = reading_of(event_id, ReadingValidated.model_validate({**document, "previous_measured_at": None}))

    assert span is not None and (span.start, span.quantity) == (JAN_1, Decimal("2"))
    assert span.registers == (("T1", Decimal("0.5")), ("T3", Decimal("1.5")))
    assert first is None


def test_local_days_and_tier_periods_follow_the_time_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start, end = day_bounds(date(2026, 3, 29), berlin)  # clocks go forward
    at = datetime(2026, 5, 1, tzinfo=SHANGHAI)

    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)
    assert tier_period(TierPeriod.BILLING_YEAR, at, SHANGHAI, date(2024, 2, 29)) == (
        datetime(2026, 2, 28, tzinfo=SHANGHAI), datetime(2027, 2, 28, tzinfo=SHANGHAI))
    assert tier_period(TierPeriod.MONTH, datetime(2026, 12, 31, 23, tzinfo=SHANGHAI), SHANGHAI, date(2024, 1, 1)) == (
        datetime(2026, 12, 1, tzinfo=SHANGHAI), datetime(2027, 1, 1, tzinfo=SHANGHAI))
