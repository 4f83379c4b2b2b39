"""Estimation methods in the spec's order of preference (vee.md §2), and when each one gives way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from amiflow_schemas.events.readings import EstimationMethod, ValidationStatus
from amiflow_schemas.primitives import Unit, Utility
from vee.core.context import LoadProfile
from vee.core.model import ReadFlag

H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def _methods(m, slots):
    return {(m.point(s).status, m.point(s).method) for s in slots}


def test_e3_a_gap_longer_than_the_interpolation_limit_without_history_is_spread_flat(meter):
    m = meter()
    m.read(T0, "10.0")
    m.read(T0 + 4 * H, "14.0")
    assert _methods(m, [T0 + h * H for h in (1, 2, 3)]) == {(ValidationStatus.ESTIMATED,
                                                             EstimationMethod.REGISTER_SPREAD)}
    assert [m.register(T0 + h * H) for h in (1, 2, 3)] == [11, 12, 13]


def _weeks_of_hours(m, weeks, outage_day=None):
    register, reads = Decimal(100), []
    for hour in range(weeks * 7 * 24 + 7):
        at = T0 + hour * H
        flags = (ReadFlag.POWER_FAILURE,) if outage_day is not None and at.date() == outage_day else ()
        reads.append((at, register, flags))
        register += Decimal("1.2") if at.hour == 6 else Decimal("0.5")  # a morning peak, not a spike
    for at, value, flags in reads:
        if flags:
            m.read(at, value, flags=flags)
    m.batch([(at, value) for at, value, flags in reads if not flags])
    return reads[-1][1]


def test_e5_needs_three_clean_like_days_or_gives_way_to_a_flat_spread(meter):
    full = meter()
    last = _weeks_of_hours(full, 3)
    full.read(T0 + (3 * 7 * 24 + 10) * H, last + Decimal("4.0"))  # three Mondays behind it: like-day shape
    gap = [T0 + (3 * 7 * 24 + h) * H for h in (7, 8, 9)]
    assert _methods(full, gap) == {(ValidationStatus.ESTIMATED, EstimationMethod.LIKE_DAY)}
    short = meter()
    last = _weeks_of_hours(short, 2)
    short.read(T0 + (2 * 7 * 24 + 10) * H, last + Decimal("4.0"))  # only two like days
    assert _methods(short, [T0 + (2 * 7 * 24 + h) * H for h in (7, 8, 9)]) == {
        (ValidationStatus.ESTIMATED, EstimationMethod.REGISTER_SPREAD)}


def test_e5_skips_a_like_day_with_an_outage(meter):
    m = meter()
    last = _weeks_of_hours(m, 3, outage_day=(T0 + 7 * D).date())
    m.read(T0 + (3 * 7 * 24 + 10) * H, last + Decimal("4.0"))
    assert _methods(m, [T0 + (3 * 7 * 24 + h) * H for h in (7, 8, 9)]) == {
        (ValidationStatus.ESTIMATED, EstimationMethod.REGISTER_SPREAD)}


def test_e6_a_class_profile_shapes_a_gap_without_own_history(meter):
    daily = (Decimal(1), Decimal(1), Decimal(1), Decimal(1), Decimal(1), Decimal(3), Decimal(4))
    m = meter(D, profile=LoadProfile(name="res", hourly_weights=(Decimal(1),) * 24, daily_weights=daily))
    m.read(T0 + 3 * D, "100")  # Thursday
    m.read(T0 + 7 * D, "190")  # Monday: Thu, Fri, Sat, Sun weigh 1, 1, 3, 4
    assert [m.point(T0 + k * D).consumption for k in (4, 5, 6, 7)] == [10, 10, 30, 40]
    assert _methods(m, [T0 + k * D for k in (4, 5, 6)]) == {(ValidationStatus.ESTIMATED, EstimationMethod.PROFILE)}


def test_e4_a_short_open_end_copies_the_last_intervals_rate(meter, rules):
    m = meter(rules=rules(estimation_wait=H))
    for hour, value in enumerate(["10.0", "10.5", "11.3"]):
        m.read(T0 + hour * H, value)
    m.estimate(until=T0 + 4 * H, now=T0 + 4 * H)
    assert [m.register(T0 + h * H) for h in (3, 4)] == [Decimal("12.1"), Decimal("12.9")]
    assert _methods(m, [T0 + 3 * H, T0 + 4 * H]) == {(ValidationStatus.ESTIMATED,
                                                      EstimationMethod.LINEAR_INTERPOLATION)}


def _estimated_registers(meter, rules, resolution):
    m = meter(D, utility=Utility.ELECTRICITY, unit=Unit.KWH, multiplier="40", resolution=resolution,
              rules=rules(estimation_wait=D))
    for day in range(8):
        m.read(T0 + day * D, Decimal(1500) + day * Decimal("0.9"))  # ADU 36 kWh = 0.9 on the dials
    m.estimate(until=T0 + 10 * D, now=T0 + 10 * D)
    assert {m.point(T0 + k * D).method for k in (8, 9, 10)} == {EstimationMethod.AVERAGE_DAILY_USAGE}
    return [m.register(T0 + k * D) for k in (8, 9, 10)], [m.point(T0 + k * D).consumption for k in (8, 9, 10)]


def test_e7_open_ended_reads_are_adu_converted_back_to_the_register(meter, rules):
    registers, consumption = _estimated_registers(meter, rules, "0.1")
    assert registers == [Decimal("1507.2"), Decimal("1508.1"), Decimal("1509.0")]
    assert consumption == [36, 36, 36]


def test_e7_truncates_to_the_registers_last_digit_and_stays_monotonic(meter, rules):
    registers, consumption = _estimated_registers(meter, rules, "1")  # 0.9, 1.8, 2.7 dials → 0, 1, 2
    assert registers == [Decimal("1506.3"), Decimal("1507.3"), Decimal("1508.3")]
    assert consumption == [0, 40, 40]


def test_the_timer_waits_for_the_retry_window_before_estimating(meter):
    m = meter(D)
    for day in range(8):
        m.read(T0 + day * D, Decimal(100 + day))
    early = m.estimate(until=T0 + 9 * D, now=T0 + 11 * D)  # 4 days silent < 5
    assert early.points == () and m.state.estimated_until is None
    late = m.estimate(until=T0 + 9 * D, now=T0 + 12 * D)
    assert [p.point.status for p in late.points] == [ValidationStatus.ESTIMATED] * 2


def test_a_gap_longer_than_the_estimation_limit_stays_missing(meter, rules):
    m = meter(D, rules=rules(max_estimated_gap=timedelta(days=3)))
    m.read(T0, "100")
    m.read(T0 + 5 * D, "150")
    assert {m.point(T0 + k * D).status for k in range(1, 5)} == {ValidationStatus.MISSING}
    closing = m.point(T0 + 5 * D)
    assert (closing.consumption, closing.previous_at) == (50, T0)


def test_an_open_end_is_estimated_no_further_than_the_estimation_limit(meter, rules):
    m = meter(D, rules=rules(max_estimated_gap=timedelta(days=3)))
    for day in range(8):
        m.read(T0 + day * D, Decimal(100 + day))
    m.estimate(until=T0 + 30 * D, now=T0 + 30 * D)
    assert max(m.points) == T0 + 10 * D
