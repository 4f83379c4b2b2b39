"""Hourly, daily and monthly consumption in the tenant's local time, and group sums over meters.

An interval that straddles bucket boundaries is shared out in proportion to time, the last share
taking the rounding remainder so the buckets add up to the interval exactly. A local day has 23 or
25 hourly buckets across a DST change. Late data changes exactly the buckets its intervals touch:
``bucket_changes`` compares two aggregations and returns only those.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from amiflow_schemas.events.readings import ValidationStatus

from vee.core.grid import Granularity, bucket_end, bucket_start, buckets_overlapping, seconds
from vee.core.model import SeriesPoint

SHARE_QUANTUM = Decimal("0.000000001")  # shares of a straddling interval; the last takes the remainder


@dataclass(frozen=True, slots=True)
class Bucket:
    """One meter's billable consumption in one local hour, day or month."""

    granularity: Granularity
    start: datetime
    end: datetime
    consumption: Decimal
    covered_s: Decimal  # seconds of the bucket with billable data
    estimated_s: Decimal  # of which estimated

    @property
    def complete(self) -> bool:
        """Every second of the bucket has billable data."""
        return self.covered_s == seconds(self.end - self.start)

    @property
    def all_actual(self) -> bool:
        """Complete and nothing estimated: usable for leak and DMA analytics."""
        return self.complete and self.estimated_s == 0


def _shares(start: datetime, end: datetime, consumption: Decimal, granularity: Granularity,
            zone: ZoneInfo) -> list[tuple[datetime, datetime, Decimal, Decimal]]:
    whole = seconds(end - start)
    first = bucket_start(start, granularity, zone)
    first_end = bucket_end(first, granularity, zone)
    if end <= first_end:  # the usual case: the interval lies in one bucket
        return [(first, first_end, consumption, whole)]
    pieces = [(b, e, seconds(min(e, end) - max(b, start))) for b, e in buckets_overlapping(start, end, granularity,
                                                                                           zone)]
    shares = [(consumption * overlap / whole).quantize(SHARE_QUANTUM) for _, _, overlap in pieces[:-1]]
    shares.append(consumption - sum(shares, Decimal(0)))
    return [(b, e, share, overlap) for (b, e, overlap), share in zip(pieces, shares, strict=True)]


@dataclass
class _Tally:
    end: datetime
    consumption: Decimal = Decimal(0)
    covered_s: Decimal = Decimal(0)
    estimated_s: Decimal = Decimal(0)
    meters: int = 0
    actual_meters: int = 0


def aggregate(points: Iterable[SeriesPoint], granularity: Granularity, zone: ZoneInfo) -> tuple[Bucket, ...]:
    """A meter's buckets from its current validated points."""
    tallies: dict[datetime, _Tally] = {}
    for point in points:
        if not point.billable or point.previous_at is None or point.consumption is None:
            continue
        estimated = point.status is ValidationStatus.ESTIMATED
        for start, end, share, overlap in _shares(point.previous_at, point.at, point.consumption, granularity,
                                                  zone):
            tally = tallies.setdefault(start, _Tally(end))
            tally.consumption += share
            tally.covered_s += overlap
            tally.estimated_s += overlap if estimated else Decimal(0)
    return tuple(Bucket(granularity, start, t.end, t.consumption, t.covered_s, t.estimated_s)
                 for start, t in sorted(tallies.items()))


@dataclass(frozen=True, slots=True)
class BucketChange:
    """A bucket whose total or actual coverage changed: the new total and the delta to the old one."""

    granularity: Granularity
    start: datetime
    end: datetime
    previous_total: Decimal | None  # None: a new bucket
    total: Decimal
    delta: Decimal
    all_actual: bool
    complete: bool  # every second covered, estimates included
    covered_s: Decimal  # seconds of the bucket with billable data
    estimated_s: Decimal  # of which estimated


def bucket_changes(before: Sequence[Bucket], after: Sequence[Bucket]) -> tuple[BucketChange, ...]:
    """The buckets that differ between two aggregations of one meter."""
    old = {b.start: b for b in before}
    kept = {b.start for b in after}
    # A bucket can lose all its billable data (a read found to be a misread): it drops to zero.
    after = [*after, *(Bucket(b.granularity, b.start, b.end, Decimal(0), Decimal(0), Decimal(0))
                       for b in before if b.start not in kept)]
    changes = []
    for bucket in sorted(after, key=lambda b: b.start):
        was = old.get(bucket.start)
        if was is not None and (was.consumption, was.covered_s, was.estimated_s) == (
                bucket.consumption, bucket.covered_s, bucket.estimated_s):
            continue
        previous = was.consumption if was else None
        changes.append(BucketChange(bucket.granularity, bucket.start, bucket.end, previous, bucket.consumption,
                                    bucket.consumption - (previous or Decimal(0)), bucket.all_actual,
                                    bucket.complete, bucket.covered_s, bucket.estimated_s))
    return tuple(changes)


def _contribution(point: SeriesPoint) -> tuple[object, ...] | None:
    # Everything of a point that its buckets are made of; None when it adds nothing to any bucket.
    if not point.billable or point.previous_at is None or point.consumption is None:
        return None
    return point.previous_at, point.at, point.consumption, point.status is ValidationStatus.ESTIMATED


def _moved(before: Sequence[SeriesPoint], after: Sequence[SeriesPoint]) -> list[SeriesPoint]:
    """The points, old and new, whose contribution to the buckets differs between two views of one meter."""
    old = {p.at: p for p in before}
    moved = []
    for point in after:
        was = old.pop(point.at, None)
        if was is point:
            continue
        if was is None or _contribution(was) != _contribution(point):
            moved += [point] if was is None else [was, point]
    return [*moved, *old.values()]


def _touching(points: Sequence[SeriesPoint], starts: Sequence[datetime],
              ends: Sequence[datetime]) -> list[SeriesPoint]:
    # The points whose interval meets one of the buckets [starts[i], ends[i]) (sorted, disjoint), in order.
    found, first = [], starts[0]
    for point in points:
        if point.at < first:
            continue
        index = bisect.bisect_left(ends, point.previous_at or point.at)
        if index < len(starts) and starts[index] <= point.at:
            found.append(point)
    return found


def view_changes(before: Sequence[SeriesPoint], after: Sequence[SeriesPoint], granularity: Granularity,
                 zone: ZoneInfo, after_buckets: Sequence[Bucket] | None = None) -> tuple[BucketChange, ...]:
    """``bucket_changes`` of the two views' aggregations, aggregating only the buckets a changed point touches.

    A bucket is the sum of the points whose intervals meet it, in slot order, so a bucket no changed
    point meets is the same in both views. ``after_buckets``: the after view's aggregation, if made already.
    """
    touched: dict[datetime, datetime] = {}
    for point in _moved(before, after):
        if point.billable and point.previous_at is not None and point.consumption is not None:
            touched.update((start, end) for start, end, _, _ in _shares(
                point.previous_at, point.at, point.consumption, granularity, zone))
    if not touched:
        return ()
    starts = sorted(touched)
    ends = [touched[s] for s in starts]
    old = [b for b in aggregate(_touching(before, starts, ends), granularity, zone) if b.start in touched]
    new = aggregate(_touching(after, starts, ends), granularity, zone) if after_buckets is None else after_buckets
    return bucket_changes(old, [b for b in new if b.start in touched])


SHARE_SHOWN = Decimal("0.0001")  # a share of a bucket's time, as a chart shades it


def time_share(part_s: Decimal, whole_s: Decimal) -> Decimal:
    """`part_s` as a share of `whole_s` (covered or estimated seconds of one bucket, or of a group's)."""
    return (part_s / whole_s).quantize(SHARE_SHOWN) if whole_s else Decimal(0)


@dataclass(frozen=True, slots=True)
class GroupBucket:
    """A group's (building, customer type, district) consumption in one bucket."""

    granularity: Granularity
    start: datetime
    end: datetime
    consumption: Decimal
    meters: int
    actual_meters: int  # meters whose bucket is complete and all actual

    @property
    def actual_coverage(self) -> Decimal:
        """The share of meters read, not estimated, in this bucket."""
        return Decimal(self.actual_meters) / Decimal(self.meters) if self.meters else Decimal(0)


def fold_group(meter_buckets: Iterable[Iterable[Bucket]]) -> tuple[GroupBucket, ...]:
    """Sum member meters' buckets of the same local period."""
    tallies: dict[tuple[Granularity, datetime], _Tally] = {}
    for buckets in meter_buckets:
        for bucket in buckets:
            tally = tallies.setdefault((bucket.granularity, bucket.start), _Tally(bucket.end))
            tally.consumption += bucket.consumption
            tally.meters += 1
            tally.actual_meters += 1 if bucket.all_actual else 0
    return tuple(GroupBucket(g, start, t.end, t.consumption, t.meters, t.actual_meters)
                 for (g, start), t in sorted(tallies.items()))
