"""An account's usage curve: what billing rated, per meter, summed into local days or months.

Each rated quantity counts in the local day (month) its span ends in — the instant just before the end,
so an hour read at midnight is the day before's. Re-ratings count where the reading they correct
does; the bucket shows the consumption and the money as corrected. Fixed fees are not usage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from amiflow_schemas.primitives import Unit, Utility

from billing.core.money import ZERO, round_money
from billing.core.periods import local_date, local_midnight

MAX_DAYS = 400
MAX_MONTHS = 36
_JUST_BEFORE = timedelta(microseconds=1)


class Granularity(StrEnum):
    DAY = "day"
    MONTH = "month"


class RangeError(ValueError):
    """A range of days the curve is not drawn for; the message says why."""


@dataclass(frozen=True)
class RatedUsage:
    """A quantity billing charged (or re-rated, signed) for one meter's span ending at ``ends_at``."""

    meter_id: str
    utility: Utility
    unit: Unit
    ends_at: datetime
    consumption: Decimal
    amount: Decimal


@dataclass(frozen=True)
class UsagePoint:
    start: datetime  # the bucket's first instant, in the zone
    consumption: Decimal
    amount: Decimal


@dataclass(frozen=True)
class UsageSeries:
    meter_id: str
    utility: Utility
    unit: Unit
    points: tuple[UsagePoint, ...]  # buckets with something rated, in order


def _months(first: date, last: date) -> int:
    return (last.year - first.year) * 12 + last.month - first.month + 1


def default_first(granularity: Granularity, last: date) -> date:
    """The first day of a curve up to ``last`` when none is asked for: 30 days, or 12 months (``last``'s included)."""
    if granularity is Granularity.DAY:
        return last - timedelta(days=29)
    month = last.year * 12 + last.month - 1 - 11
    return date(month // 12, month % 12 + 1, 1)


def check_range(granularity: Granularity, first: date, last: date) -> None:
    """Refuse (RangeError) a range out of order or longer than MAX_DAYS days or MAX_MONTHS months."""
    if first > last:
        raise RangeError(f"from {first} is after to {last}")
    if granularity is Granularity.DAY and (last - first).days + 1 > MAX_DAYS:
        raise RangeError(f"a daily curve covers at most {MAX_DAYS} days, not {(last - first).days + 1}; "
                         "ask for granularity=month")
    if granularity is Granularity.MONTH and _months(first, last) > MAX_MONTHS:
        raise RangeError(f"a monthly curve covers at most {MAX_MONTHS} months, not {_months(first, last)}")


def bucket_start(ends_at: datetime, granularity: Granularity, zone: ZoneInfo) -> datetime:
    """The first instant of the local day or month a span ending at ``ends_at`` counts in."""
    day = local_date(ends_at - _JUST_BEFORE, zone)
    return local_midnight(day if granularity is Granularity.DAY else day.replace(day=1), zone)


def in_range(ends_at: datetime, first: date, last: date, zone: ZoneInfo) -> bool:
    """True when a span ending at ``ends_at`` counts in one of the local days first..last."""
    return local_midnight(first, zone) < ends_at <= local_midnight(last + timedelta(days=1), zone)


def usage_series(rated: Iterable[RatedUsage], granularity: Granularity, first: date, last: date,
                 zone: ZoneInfo) -> list[UsageSeries]:
    """Per meter (and unit), the sums of each bucket in first..last with something rated; meters in id order."""
    sums: dict[tuple[str, Utility, Unit], dict[datetime, tuple[Decimal, Decimal]]] = {}
    for usage in rated:
        if not in_range(usage.ends_at, first, last, zone):
            continue
        buckets = sums.setdefault((usage.meter_id, usage.utility, usage.unit), {})
        start = bucket_start(usage.ends_at, granularity, zone)
        consumption, amount = buckets.get(start, (ZERO, ZERO))
        buckets[start] = (consumption + usage.consumption, amount + usage.amount)
    return [UsageSeries(meter_id, utility, unit, tuple(
        UsagePoint(start, consumption, round_money(amount))
        for start, (consumption, amount) in sorted(buckets.items())))
        for (meter_id, utility, unit), buckets in sorted(sums.items(), key=lambda item: item[0])]
