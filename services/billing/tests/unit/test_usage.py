"""An account's usage curve: rated quantities summed into local days or months of the account's zone."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.primitives import Unit, Utility
from billing.core.usage import (
    Granularity,
    RangeError,
    RatedUsage,
    bucket_start,
    check_range,
    default_first,
    usage_series,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def _water(ends_at: str, consumption: str, amount: str, meter_id: str = "WM-1") -> RatedUsage:
    return RatedUsage(meter_id, Utility.WATER, Unit.M3, datetime.fromisoformat(ends_at), Decimal(consumption),
                      Decimal(amount))


def test_a_span_counts_in_the_local_day_it_ends_in_and_one_ending_at_midnight_in_the_day_before() -> None:
    rated = [_water("2026-07-14T15:00:00+00:00", "2.0", "10.00"),  # 23:00 on the 14th in Shanghai
             _water("2026-07-14T16:00:00+00:00", "1.0", "5.00"),  # midnight: the hour before it
             _water("2026-07-14T17:00:00+00:00", "3.0", "15.00")]  # 01:00 on the 15th
    [series] = usage_series(rated, Granularity.DAY, date(2026, 7, 14), date(2026, 7, 15), SHANGHAI)
    assert [(p.start.isoformat(), p.consumption, p.amount) for p in series.points] == [
        ("2026-07-14T00:00:00+08:00", Decimal("3.0"), Decimal("15.00")),
        ("2026-07-15T00:00:00+08:00", Decimal("3.0"), Decimal("15.00"))]
    [later] = usage_series(rated, Granularity.DAY, date(2026, 7, 15), date(2026, 7, 15), SHANGHAI)
    assert [p.consumption for p in later.points] == [Decimal("3.0")]


def test_months_sum_their_days_and_a_re_rating_subtracts_where_it_counts() -> None:
    rated = [_water("2026-06-30T15:59:00+00:00", "4", "20.00"),  # 23:59 on 30 June
             _water("2026-07-01T01:00:00+00:00", "6", "30.00"),
             _water("2026-07-20T01:00:00+00:00", "-1.5", "-7.50")]  # a correction posted later, signed
    [series] = usage_series(rated, Granularity.MONTH, date(2026, 6, 1), date(2026, 7, 31), SHANGHAI)
    assert [(p.start.isoformat(), p.consumption, p.amount) for p in series.points] == [
        ("2026-06-01T00:00:00+08:00", Decimal("4"), Decimal("20.00")),
        ("2026-07-01T00:00:00+08:00", Decimal("4.5"), Decimal("22.50"))]


def test_each_meter_is_its_own_series_in_meter_order_with_only_the_buckets_that_have_usage() -> None:
    rated = [_water("2026-07-14T02:00:00+00:00", "1", "5.00", "WM-2"),
             RatedUsage("EM-1", Utility.ELECTRICITY, Unit.KWH, datetime.fromisoformat("2026-07-16T02:00:00+00:00"),
                        Decimal("10"), Decimal("4.883"))]
    series = usage_series(rated, Granularity.DAY, date(2026, 7, 1), date(2026, 7, 31), SHANGHAI)
    assert [(s.meter_id, s.unit, len(s.points)) for s in series] == [("EM-1", Unit.KWH, 1), ("WM-2", Unit.M3, 1)]
    assert series[0].points[0].amount == Decimal("4.88")  # money to the cent
    assert usage_series(rated, Granularity.DAY, date(2026, 8, 1), date(2026, 8, 31), SHANGHAI) == []


def test_local_days_follow_the_zone_across_a_daylight_saving_change() -> None:
    # 29 March 2026 has 23 hours in Berlin; a span ending at 00:30 on the 30th local time is the 30th's.
    assert bucket_start(datetime.fromisoformat("2026-03-29T22:30:00+00:00"), Granularity.DAY, BERLIN).isoformat() \
        == "2026-03-30T00:00:00+02:00"
    assert bucket_start(datetime.fromisoformat("2026-03-29T21:00:00+00:00"), Granularity.MONTH, BERLIN).isoformat() \
        == "2026-03-01T00:00:00+01:00"


def test_ranges_are_bounded_and_default_to_30_days_or_12_months() -> None:
    check_range(Granularity.DAY, date(2025, 6, 12), date(2026, 7, 16))  # 400 days
    with pytest.raises(RangeError, match="at most 400 days, not 401"):
        check_range(Granularity.DAY, date(2025, 6, 11), date(2026, 7, 16))
    check_range(Granularity.MONTH, date(2023, 8, 31), date(2026, 7, 1))  # 36 months
    with pytest.raises(RangeError, match="at most 36 months, not 37"):
        check_range(Granularity.MONTH, date(2023, 7, 31), date(2026, 7, 1))
    with pytest.raises(RangeError, match="after"):
        check_range(Granularity.DAY, date(2026, 7, 2), date(2026, 7, 1))
    assert default_first(Granularity.DAY, date(2026, 7, 16)) == date(2026, 6, 17)
    assert default_first(Granularity.MONTH, date(2026, 7, 16)) == date(2025, 8, 1)
    assert default_first(Granularity.MONTH, date(2026, 12, 31)) == date(2026, 1, 1)
