"""The buckets a period's total is read from: whole local months, the days around them, the hours at the ends,
tiling exactly the hours a curve over the same range shows — across DST and odd offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from vee.core.grid import Granularity, bucket_cover, bucket_end, buckets_overlapping

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]


def _buckets(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """Every bucket the cover of [start, end) selects, in time order."""
    cover = bucket_cover(start, end, zone)
    chosen = []
    for granularity, first, last in cover.ranges:
        bucket = first
        while bucket < last:
            chosen.append((bucket, bucket_end(bucket, granularity, zone)))
            bucket = chosen[-1][1]
    return sorted(chosen)


def test_whole_local_months_are_read_as_month_buckets_and_the_days_around_them_as_days() -> None:
    start, end = _local(SHANGHAI, 2026, 1, 15), _local(SHANGHAI, 2026, 4, 10)
    cover = bucket_cover(start, end, SHANGHAI)
    assert cover.start == start and cover.end == end
    assert cover.ranges == ((Granularity.DAY, start, _local(SHANGHAI, 2026, 2, 1)),
                            (Granularity.MONTH, _local(SHANGHAI, 2026, 2, 1), _local(SHANGHAI, 2026, 4, 1)),
                            (Granularity.DAY, _local(SHANGHAI, 2026, 4, 1), end))


def test_the_ends_are_rounded_up_to_a_local_hour_and_read_as_hour_buckets() -> None:
    start = _local(SHANGHAI, 2026, 3, 1, 22, 30)  # the hour beginning at 22:30 is not whole: from 23:00
    end = _local(SHANGHAI, 2026, 3, 3, 1, 10)  # the hour from 01:00 begins before `to`: up to 02:00
    cover = bucket_cover(start, end, SHANGHAI)
    assert (cover.start, cover.end) == (_local(SHANGHAI, 2026, 3, 1, 23), _local(SHANGHAI, 2026, 3, 3, 2))
    assert [g for g, _, _ in cover.ranges] == [Granularity.HOUR, Granularity.DAY, Granularity.HOUR]
    assert cover.ranges[1][1:] == (_local(SHANGHAI, 2026, 3, 2), _local(SHANGHAI, 2026, 3, 3))


def test_a_period_within_one_hour_covers_nothing() -> None:
    start = _local(SHANGHAI, 2026, 3, 1, 10, 5)
    cover = bucket_cover(start, start + timedelta(minutes=20), SHANGHAI)
    assert cover.ranges == () and cover.start == cover.end


def test_a_year_from_a_month_start_is_twelve_month_buckets() -> None:
    start = _local(SHANGHAI, 2025, 11, 1)
    cover = bucket_cover(start, _local(SHANGHAI, 2026, 11, 1), SHANGHAI)
    assert [g for g, _, _ in cover.ranges] == [Granularity.MONTH]
    assert len(_buckets(cover.start, cover.end, SHANGHAI)) == 12


@settings(max_examples=100, deadline=None)
@given(zone=st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "America/Santiago", "Asia/Kathmandu"]),
       start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
       span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
def test_the_cover_tiles_exactly_the_hours_a_curve_over_the_same_range_shows(zone: str, start: datetime,
                                                                               span: timedelta) -> None:
    tz = ZoneInfo(zone)
    end = start + span
    hours = [b for b in buckets_overlapping(start, end, Granularity.HOUR, tz) if b[0] >= start]
    chosen = _buckets(start, end, tz)
    if not hours:
        assert chosen == []
        return
    assert chosen[0][0] == hours[0][0] and chosen[-1][1] == hours[-1][1]
    assert all(a[1] == b[0] for a, b in pairwise(chosen))  # contiguous, no overlap
