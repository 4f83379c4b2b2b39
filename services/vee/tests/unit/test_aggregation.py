"""Hourly, daily and monthly buckets in the tenant's local time, DST days, late data and group sums."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.readings import ValidationStatus
from vee.core.aggregation import Bucket, aggregate, fold_group
from vee.core.grid import Granularity, local_midnight

H = timedelta(hours=1)
D = timedelta(days=1)


def _hourly_day(meter, zone: str, day: date, use: str = "0.5"):
    m = meter(zone=zone)
    start, end = local_midnight(day, ZoneInfo(zone)), local_midnight(day + D, ZoneInfo(zone))
    slots = list(m.context.grid.slots(start, end))
    m.batch([(at, Decimal(10) + Decimal(use) * index) for index, at in enumerate(slots)])
    return m, [p for p in m.points.values()]


@pytest.mark.parametrize(("zone", "day", "hours"), [
    ("Europe/Berlin", date(2026, 3, 29), 23), ("Europe/Berlin", date(2026, 10, 25), 25),
    ("America/New_York", date(2026, 3, 8), 23), ("America/New_York", date(2026, 11, 1), 25),
    ("Asia/Shanghai", date(2026, 3, 29), 24)])
def test_a_local_day_has_as_many_hourly_buckets_as_hours(meter, zone, day, hours):
    m, points = _hourly_day(meter, zone, day)
    hourly = aggregate(points, Granularity.HOUR, m.context.zone)
    [daily] = aggregate(points, Granularity.DAY, m.context.zone)
    assert len(hourly) == hours and all(b.consumption == Decimal("0.5") and b.all_actual for b in hourly)
    assert (daily.start, daily.consumption, daily.complete) == (local_midnight(day, m.context.zone),
                                                               Decimal("0.5") * hours, True)
    [month] = aggregate(points, Granularity.MONTH, m.context.zone)
    assert month.start == local_midnight(day.replace(day=1), m.context.zone) and month.consumption == daily.consumption


def test_daily_reads_at_local_midnight_make_one_23_hour_interval_on_the_dst_day(meter):
    m = meter(D, zone="Europe/Berlin")
    zone = m.context.zone
    for offset, value in enumerate(["100", "123", "146"]):
        m.read(local_midnight(date(2026, 3, 28) + offset * D, zone), value)
    spring = m.point(local_midnight(date(2026, 3, 30), zone))
    assert spring.at - spring.previous_at == 23 * H
    days = aggregate(m.points.values(), Granularity.DAY, zone)
    assert [(b.start, b.consumption) for b in days] == [(local_midnight(date(2026, 3, 28), zone), 23),
                                                        (local_midnight(date(2026, 3, 29), zone), 23)]


def test_an_interval_across_local_midnight_is_shared_out_by_time_and_adds_up_exactly(meter):
    m = meter(D, zone="UTC")
    m.read(datetime(2026, 3, 2, tzinfo=UTC), "100")
    m.read(datetime(2026, 3, 3, tzinfo=UTC), "110")
    shanghai = ZoneInfo("Asia/Shanghai")  # UTC midnight is 08:00 there: 16 h of one day, 8 of the next
    days = aggregate(m.points.values(), Granularity.DAY, shanghai)
    assert [b.consumption for b in days] == [Decimal("6.666666667"), Decimal("3.333333333")]
    assert sum(b.consumption for b in days) == 10 and not any(b.complete for b in days)


def test_late_data_changes_exactly_the_buckets_it_touches(meter):
    m = meter(zone="Asia/Shanghai")
    day = local_midnight(date(2026, 3, 2), m.context.zone)
    m.batch([(day + h * H, Decimal(h)) for h in range(30) if h != 12])
    late = m.read(day + 12 * H, "12.4")
    changed = {(c.granularity, c.start): (c.delta, c.all_actual) for c in late.buckets}
    month = local_midnight(date(2026, 3, 1), m.context.zone)
    assert changed == {(Granularity.HOUR, day + 11 * H): (Decimal("0.4"), True),
                       (Granularity.HOUR, day + 12 * H): (Decimal("-0.4"), True),
                       # the day's total did not move, but it is all actual now
                       (Granularity.DAY, day): (0, True), (Granularity.MONTH, month): (0, False)}
    other = m.read(day + 30 * H, "30")
    assert {(c.granularity, c.start) for c in other.buckets} == {
        (Granularity.HOUR, day + 29 * H), (Granularity.DAY, day + D), (Granularity.MONTH, month)}


def test_a_group_is_the_sum_of_its_meters_buckets():
    start = datetime(2026, 3, 2, tzinfo=UTC)
    full, estimated = Decimal(86400), Decimal(3600)
    meters = [[Bucket(Granularity.DAY, start, start + D, Decimal("1.5"), full, Decimal(0))],
              [Bucket(Granularity.DAY, start, start + D, Decimal("2.5"), full, estimated)],
              [Bucket(Granularity.DAY, start + D, start + 2 * D, Decimal(4), full, Decimal(0))]]
    first, second = fold_group(meters)
    assert (first.consumption, first.meters, first.actual_meters, first.actual_coverage) == (
        Decimal(4), 2, 1, Decimal("0.5"))
    assert (second.start, second.consumption, second.meters) == (start + D, Decimal(4), 1)


def test_a_meter_polled_at_a_stable_minute_reads_on_its_own_grid(meter):
    m = meter(read_offset=timedelta(minutes=23))
    start = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=23)
    m.batch([(start + h * H, Decimal(10) + Decimal("0.6") * h) for h in range(4)])
    assert {(p.status, p.checks) for p in m.points.values()} == {(ValidationStatus.ACTUAL, ())}
    hours = aggregate(m.points.values(), Granularity.HOUR, m.context.zone)
    assert [(b.start.minute, b.consumption, b.complete) for b in hours] == [
        (0, Decimal("0.37"), False), (0, Decimal("0.6"), True), (0, Decimal("0.6"), True), (0, Decimal("0.23"), False)]
