"""Re-rating after a ReadingCorrected posts the difference and rewrites no history (billing.md R4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.billing import AdjustmentReason
from amiflow_schemas.events.readings import ReadingCorrected
from billing.core.accounts import Account
from billing.core.rating import MeterReading, RatingError, TierPeriodState, rate_reading
from billing.core.rerating import corrected_reading, rerate
from billing.core.tariffs import Tariff

SHANGHAI = ZoneInfo("Asia/Shanghai")
YEAR = datetime(2026, 1, 1, tzinfo=SHANGHAI)
DAY = datetime(2026, 3, 1, tzinfo=SHANGHAI)
POSTED = DAY + timedelta(days=5)
CORRECTION = UUID("00000000-0000-4000-8000-00000000c0de")
Builder = Callable[..., Any]


def _rated(history: list[MeterReading], account: Account, tariff: Tariff) -> dict[datetime, TierPeriodState]:
    periods: dict[datetime, TierPeriodState] = {}
    for reading in history:
        periods.update(rate_reading(reading, account, tariff, periods).periods)
    return periods


def _correction(superseded: MeterReading, consumption: str | None, status: str = "actual") -> ReadingCorrected:
    return ReadingCorrected.model_validate({
        "meter_id": superseded.meter_id, "utility": "water", "measured_at": superseded.end,
        "registers": [{"register": "total", "value": "102", "unit": "m3"}], "consumption": consumption,
        "consumption_unit": "m3" if consumption is not None else None, "previous_measured_at": superseded.start,
        "status": status, "estimation_method": None, "source_event_id": "00000000-0000-4000-8000-000000000009",
        "reading_version": 2, "supersedes_event_id": str(superseded.reading_event_id),
        "correction_reason": "late_actual",
    })


def test_r4_an_actual_replacing_an_estimate_posts_minus_five(account: Builder, tariff: Builder,
                                                             reading: Builder) -> None:
    acc, flat = account(), tariff(tiers=[(None, "5.00")])
    estimate = reading(DAY, DAY + timedelta(days=1), "3.00")
    periods = _rated([estimate], acc, flat)
    actual = corrected_reading(CORRECTION, _correction(estimate, "2.00"), estimate)

    result = rerate(estimate.reading_event_id, actual, [estimate], acc, flat, periods, POSTED)

    assert result.adjustment is not None
    assert result.adjustment.amount == Decimal("-5.00")  # signed like a charge: 5.00 back to the customer
    assert result.adjustment.reason is AdjustmentReason.RE_RATED
    assert result.adjustment.correction_event_id == CORRECTION
    assert result.adjustment.quantity == Decimal("-1.00")
    assert [(line.quantity, line.cost) for line in result.adjustment.lines] == [(Decimal("2.00"), Decimal("10.0000"))]
    assert [(line.quantity, line.cost) for line in result.adjustment.replaced_lines] == [
        (Decimal("3.00"), Decimal("15.0000"))]
    assert result.history == (actual,)
    assert result.periods[YEAR].exact_cost == Decimal("10.0000")


def test_a_lower_earlier_reading_moves_later_readings_back_into_the_cheaper_tier(
        account: Builder, tariff: Builder, reading: Builder) -> None:
    acc, stepped = account(), tariff()
    early = reading(YEAR, DAY, "175")
    later = reading(DAY, DAY + timedelta(days=1), "10")
    periods = _rated([early, later], acc, stepped)  # 875.00 + 60.00
    lower = corrected_reading(CORRECTION, _correction(early, "170"), early)

    result = rerate(early.reading_event_id, lower, [early, later], acc, stepped, periods, POSTED)

    # Now 170 @ 5.00 + 10 @ 5.00 = 900.00: 35.00 back, of which 10.00 is the later reading's re-pricing.
    assert result.adjustment is not None and result.adjustment.amount == Decimal("-35.00")
    assert [(line.tier, line.quantity) for line in result.adjustment.lines] == [(1, Decimal("180"))]
    assert [(line.tier, line.quantity) for line in result.adjustment.replaced_lines] == [
        (1, Decimal("180")), (2, Decimal("5"))]
    assert result.history == (lower, later)


def test_a_correction_to_an_unbillable_reading_takes_its_whole_charge_back(account: Builder, tariff: Builder,
                                                                           reading: Builder) -> None:
    acc, flat = account(), tariff(tiers=[(None, "5.00")])
    estimate = reading(DAY, DAY + timedelta(days=1), "3.00")
    failed = corrected_reading(CORRECTION, _correction(estimate, None, status="failed"), estimate)

    result = rerate(estimate.reading_event_id, failed, [estimate], acc, flat, _rated([estimate], acc, flat), POSTED)

    assert result.adjustment is not None and result.adjustment.amount == Decimal("-15.00")
    assert result.adjustment.lines == ()


def test_a_correction_that_changes_nothing_priced_posts_nothing_but_takes_the_readings_place(
        account: Builder, tariff: Builder, reading: Builder) -> None:
    acc, flat = account(), tariff(tiers=[(None, "5.00")])
    estimate = reading(DAY, DAY + timedelta(days=1), "3.00")
    same = corrected_reading(CORRECTION, _correction(estimate, "3.00"), estimate)

    result = rerate(estimate.reading_event_id, same, [estimate], acc, flat, _rated([estimate], acc, flat), POSTED)

    assert result.adjustment is None
    assert [r.reading_event_id for r in result.history] == [CORRECTION]


def test_a_correction_of_a_reading_never_rated_is_refused_so_it_is_rated_as_new(
        account: Builder, tariff: Builder, reading: Builder) -> None:
    estimate = reading(DAY, DAY + timedelta(days=1), "3.00")

    with pytest.raises(RatingError, match="never rated"):
        rerate(estimate.reading_event_id, estimate, [], account(), tariff(), {}, POSTED)


def test_a_history_missing_readings_of_the_period_is_refused_rather_than_credited(
        account: Builder, tariff: Builder, reading: Builder) -> None:
    acc, stepped = account(), tariff()
    early = reading(YEAR, DAY, "175")
    later = reading(DAY, DAY + timedelta(days=1), "10")
    periods = _rated([early, later], acc, stepped)
    lower = corrected_reading(CORRECTION, _correction(later, "8"), later)

    with pytest.raises(RatingError, match="give every reading"):
        rerate(later.reading_event_id, lower, [later], acc, stepped, periods, POSTED)
