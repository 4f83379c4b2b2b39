"""The read grid and the tenant's local calendar: slots, local days and DST-aware buckets.

All instants leave this module in UTC. Sub-daily grids are aligned to the tenant's wall clock (a
meter in a +05:45 zone reads at local :00, not UTC :00); a daily grid is one read per local day at
the tenant's read time, so a daily interval lasts 23 or 25 hours across a DST change (vee.md V1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Granularity(StrEnum):
    """The calendar buckets consumption is summed into, in the tenant's local time."""

    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


@lru_cache(maxsize=1 << 12)  # spans repeat (an hour, a day); the same exact Decimal comes back
def seconds(span: timedelta) -> Decimal:
    """A span in seconds as an exact Decimal (timedelta.total_seconds() is a float)."""
    return Decimal(span // timedelta(microseconds=1)) / Decimal(1_000_000)


def in_days(span: timedelta) -> Decimal:
    """A span in days as an exact Decimal."""
    return seconds(span) / seconds(DAY)


@lru_cache(maxsize=1 << 16)  # pure and called for every point of every derivation
def local_midnight(day: date, zone: ZoneInfo, at: time = time(0)) -> datetime:
    """The UTC instant of ``at`` on a local calendar day."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    """The tenant's calendar day an instant falls on."""
    return instant.astimezone(zone).date()


@lru_cache(maxsize=1 << 16)  # pure and called for every point of every derivation
def _floor_wall_clock(instant: datetime, step: timedelta, zone: ZoneInfo) -> datetime:
    offset = instant.astimezone(zone).utcoffset() or timedelta(0)
    wall = instant + offset - _EPOCH
    return _EPOCH + (wall // step) * step - offset


class ReadGrid:
    """The instants a meter is expected to report at (one slot per read interval).

    ``offset`` is the meter's stable phase within its interval: the head-end spreads polls by a
    per-meter jitter, so a meter polled "hourly, jitter 1h" may always read at minute 23. Its slots
    are hh:23; the buckets of local hours then share each interval by time.
    """

    def __init__(self, interval: timedelta, zone: ZoneInfo, read_time: time,
                 offset: timedelta = timedelta(0)) -> None:
        if interval != DAY and (interval <= timedelta(0) or DAY % interval):
            raise ValueError(f"a read interval must divide a day or be one day, not {interval}")
        if not timedelta(0) <= offset < interval:
            raise ValueError(f"a read offset must lie within the interval, not {offset}")
        self.interval, self.zone, self.read_time, self.offset = interval, zone, read_time, offset
        self.daily = interval == DAY  # True when the meter reads once per local day
        # Every derivation walks the same slots again: remember them (bounded, see _remember).
        self._floors: dict[datetime, datetime] = {}
        self._nexts: dict[datetime, datetime] = {}

    def floor(self, instant: datetime) -> datetime:
        """The latest slot at or before ``instant``."""
        found = self._floors.get(instant)
        if found is None:
            found = _remember(self._floors, instant, self._floor(instant))
        return found

    def _floor(self, instant: datetime) -> datetime:
        unshifted = instant.astimezone(UTC) - self.offset
        if not self.daily:
            return _floor_wall_clock(unshifted, self.interval, self.zone) + self.offset
        day = local_date(unshifted, self.zone)
        slot = local_midnight(day, self.zone, self.read_time)
        return (slot if slot <= unshifted else local_midnight(day - DAY, self.zone, self.read_time)) + self.offset

    def next(self, slot: datetime) -> datetime:
        """The slot after ``slot``."""
        if slot.tzinfo is not UTC:  # wall-clock arithmetic in another zone may differ: no memo
            return self._next(slot)
        found = self._nexts.get(slot)
        if found is None:
            found = _remember(self._nexts, slot, self._next(slot))
        return found

    def _next(self, slot: datetime) -> datetime:
        if self.daily:
            day = local_date(slot - self.offset, self.zone)
            return local_midnight(day + DAY, self.zone, self.read_time) + self.offset
        return self.floor(slot + self.interval)

    def nearest(self, instant: datetime) -> datetime:
        """The slot closest to ``instant`` (the earlier one on a tie)."""
        before = self.floor(instant)
        after = self.next(before)
        return before if instant - before <= after - instant else after

    def slots(self, first: datetime, last: datetime) -> Iterator[datetime]:
        """Every slot from ``first`` to ``last``, both included."""
        slot = self.floor(first)
        if slot < first:
            slot = self.next(slot)
        while slot <= last:
            yield slot
            slot = self.next(slot)

    def slots_per_day(self, day: date) -> int:
        """How many slots a local day holds: 24 or 23/25 for hourly reads, 96 or 92/100 for 15 min."""
        return sum(1 for _ in self.slots(local_midnight(day, self.zone), local_midnight(day + DAY, self.zone)
                                         - timedelta(microseconds=1)))


# Instants per grid and question: a kept window of hourly slots and their reads (~70 days, ~3,400 instants).
# With up to 64 grids that bounds the memos near 100 MB in the worst case (every grid full).
_REMEMBERED = 1 << 12


def _remember(memo: dict[datetime, datetime], instant: datetime, answer: datetime) -> datetime:
    if len(memo) >= _REMEMBERED:
        memo.clear()
    memo[instant] = answer
    return answer


@lru_cache(maxsize=64)  # one grid per meter configuration, shared so that its memo is too
def read_grid(interval: timedelta, zone: ZoneInfo, read_time: time, offset: timedelta) -> ReadGrid:
    """The read grid of a meter configuration (the same object for the same configuration)."""
    return ReadGrid(interval, zone, read_time, offset)


@lru_cache(maxsize=1 << 16)  # pure and called for every point of every derivation
def bucket_start(instant: datetime, granularity: Granularity, zone: ZoneInfo) -> datetime:
    """The local hour, day or month ``instant`` falls in, as a UTC instant."""
    if granularity is Granularity.HOUR:
        return _floor_wall_clock(instant.astimezone(UTC), HOUR, zone)
    day = local_date(instant, zone)
    if granularity is Granularity.MONTH:
        day = day.replace(day=1)
    return local_midnight(day, zone)


@lru_cache(maxsize=1 << 16)  # pure and called for every point of every derivation
def bucket_end(start: datetime, granularity: Granularity, zone: ZoneInfo) -> datetime:
    """Where the bucket beginning at ``start`` ends (a local day may last 23 or 25 hours)."""
    if granularity is Granularity.HOUR:
        return _floor_wall_clock(start + HOUR, HOUR, zone)
    day = local_date(start, zone)
    if granularity is Granularity.DAY:
        return local_midnight(day + DAY, zone)
    first_of_next = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return local_midnight(first_of_next, zone)


def buckets_overlapping(start: datetime, end: datetime, granularity: Granularity,
                        zone: ZoneInfo) -> Iterator[tuple[datetime, datetime]]:
    """The (start, end) of every bucket that the period [start, end) touches."""
    bucket = bucket_start(start, granularity, zone)
    while bucket < end:
        following = bucket_end(bucket, granularity, zone)
        yield bucket, following
        bucket = following


def _ceil(instant: datetime, granularity: Granularity, zone: ZoneInfo) -> datetime:
    """The first bucket boundary at or after ``instant``."""
    start = bucket_start(instant, granularity, zone)
    return start if start == instant else bucket_end(start, granularity, zone)



@dataclass(frozen=True)
class BucketCover:
    """The stored buckets whose sum is a meter's consumption over [start, end): for each piece, a
    granularity and the range [first, end) its bucket starts lie in."""

    start: datetime
    end: datetime
    ranges: tuple[tuple[Granularity, datetime, datetime], ...]


def bucket_cover(start: datetime, end: datetime, zone: ZoneInfo) -> BucketCover:
    """As few buckets as possible that add up to the hour buckets starting in [start, end).

    Those are the buckets an hourly curve over the same range shows, so a total and its curve agree: the
    whole local months as month buckets, the days around them as day buckets, the hours at either end as
    hour buckets. The cover's start and end are ``start`` and ``end`` rounded up to a local hour.
    """
    first_hour, end_hour = _ceil(start, Granularity.HOUR, zone), _ceil(end, Granularity.HOUR, zone)
    first_day, last_day = _ceil(first_hour, Granularity.DAY, zone), bucket_start(end_hour, Granularity.DAY, zone)
    if first_day >= last_day:  # no whole local day: hours only
        first_day = last_day = end_hour
    first_month = _ceil(first_day, Granularity.MONTH, zone)
    last_month = bucket_start(last_day, Granularity.MONTH, zone)
    if first_month >= last_month:  # no whole local month: days between the hours
        first_month = last_month = last_day
    pieces = ((Granularity.HOUR, first_hour, first_day), (Granularity.DAY, first_day, first_month),
              (Granularity.MONTH, first_month, last_month), (Granularity.DAY, last_month, last_day),
              (Granularity.HOUR, last_day, end_hour))
    return BucketCover(first_hour, end_hour, tuple((g, lo, hi) for g, lo, hi in pieces if lo < hi))
