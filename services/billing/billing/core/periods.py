"""Local days and tier periods in the tenant's time zone (billing.md: periods reset at local midnight)."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from amiflow_schemas.events.tariffs import TierPeriod


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant local ``day`` starts in ``zone``."""
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def local_date(at: datetime, zone: ZoneInfo) -> date:
    """The local calendar day ``at`` falls on in ``zone``."""
    return at.astimezone(zone).date()


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The start and end of local ``day``: 23, 24 or 25 elapsed hours apart (subtract them in UTC)."""
    return local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)


def _anniversary(anchor: date, year: int) -> date:
    # A 29 February anchor falls on 28 February in common years.
    return date(year, anchor.month, min(anchor.day, calendar.monthrange(year, anchor.month)[1]))


def _period_start_day(kind: TierPeriod, day: date, billing_year_start: date) -> date:
    if kind is TierPeriod.MONTH:
        return day.replace(day=1)
    if kind is TierPeriod.CALENDAR_YEAR:
        return date(day.year, 1, 1)
    this_year = _anniversary(billing_year_start, day.year)
    return this_year if this_year <= day else _anniversary(billing_year_start, day.year - 1)


def _next_period_start_day(kind: TierPeriod, start: date, billing_year_start: date) -> date:
    if kind is TierPeriod.MONTH:
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    if kind is TierPeriod.CALENDAR_YEAR:
        return date(start.year + 1, 1, 1)
    return _anniversary(billing_year_start, start.year + 1)


def tier_period(kind: TierPeriod, at: datetime, zone: ZoneInfo, billing_year_start: date) -> tuple[datetime, datetime]:
    """The start and end of the tier period ``at`` falls in, at local midnights of ``zone``."""
    start = _period_start_day(kind, local_date(at, zone), billing_year_start)
    end = _next_period_start_day(kind, start, billing_year_start)
    return local_midnight(start, zone), local_midnight(end, zone)


def tier_periods(kind: TierPeriod, start: datetime, end: datetime, zone: ZoneInfo,
                 billing_year_start: date) -> list[tuple[datetime, datetime]]:
    """The tier periods the span [start, end) overlaps, in order."""
    periods = [tier_period(kind, start, zone, billing_year_start)]
    while periods[-1][1] < end:
        periods.append(tier_period(kind, periods[-1][1], zone, billing_year_start))
    return periods
