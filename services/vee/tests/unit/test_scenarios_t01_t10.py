"""vee.md §6 scenarios T1-T10 with the spec's numbers: validation, estimation and register arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from amiflow_schemas.events.alarms import AlarmType
from amiflow_schemas.events.readings import CorrectionReason, EstimationMethod, ValidationStatus
from amiflow_schemas.primitives import Unit, Utility
from vee.core.checks import scale_to_register
from vee.core.context import MeterDevice
from vee.core.grid import Granularity
from vee.core.model import Check
from vee.core.registers import open_ended_register, sum_within_tolerance
from vee.core.rules import VeeParameters

H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def test_t01_clean_hourly_reads_are_actual_with_their_deltas(meter):
    m = meter()
    for hour, value in enumerate(["1000.0", "1000.4", "1000.9", "1001.2"]):
        m.read(T0 + hour * H, value)
    points = list(m.points.values())
    assert [p.status for p in points] == [ValidationStatus.ACTUAL] * 4
    assert [p.consumption for p in points] == [None, Decimal("0.4"), Decimal("0.5"), Decimal("0.3")]
    assert all(p.checks == () for p in points)


def test_t02_a_two_hour_gap_is_interpolated_linearly(meter):
    m = meter()
    m.read(T0, "500.0")
    m.read(T0 + H, "501.0")
    m.read(T0 + 3 * H, "503.4")
    gap = m.point(T0 + 2 * H)
    assert (gap.status, gap.method) == (ValidationStatus.ESTIMATED, EstimationMethod.LINEAR_INTERPOLATION)
    assert m.register(T0 + 2 * H) == Decimal("502.2")
    assert [gap.consumption, m.point(T0 + 3 * H).consumption] == [Decimal("1.2"), Decimal("1.2")]


LIKE_DAYS = {  # hours 06-12 of the three previous Tuesdays
    T0 + 15 * D: ["1.2", "1.8", "3.3", "2.1", "0.9", "1.2"],
    T0 + 8 * D: ["0.9", "2.1", "2.7", "1.8", "1.2", "0.9"],
    T0 + 1 * D: ["0.9", "2.1", "3.0", "2.1", "0.9", "0.9"],
}


def _history_until(target_six: datetime) -> list[tuple[datetime, Decimal]]:
    uses, at = [], T0 + D
    while at < target_six:
        day = at.replace(hour=0)
        shaped = LIKE_DAYS.get(day)
        uses.append((at, Decimal(shaped[at.hour - 6]) if shaped and 6 <= at.hour < 12 else Decimal("0.5")))
        at += H
    register = Decimal("2000.0") - sum(u for _, u in uses)
    reads = [(T0 + D, register)]
    for at, use in uses:
        register += use
        reads.append((at + H, register))
    return reads


def test_t03_a_long_gap_takes_the_like_days_shape_scaled_to_the_register(meter):
    m = meter()
    target_six = T0 + 22 * D + 6 * H  # Tuesday 06:00
    m.batch(_history_until(target_six))
    assert m.register(target_six) == Decimal("2000.0")
    m.read(T0 + 22 * D + 12 * H, "2012.0")
    estimated = [m.point(target_six + k * H) for k in range(1, 6)]
    assert {(p.status, p.method) for p in estimated} == {(ValidationStatus.ESTIMATED, EstimationMethod.LIKE_DAY)}
    assert [m.register(target_six + k * H) for k in range(1, 7)] == [
        Decimal(v) for v in ["2001.2", "2003.6", "2007.2", "2009.6", "2010.8", "2012.0"]]
    assert [m.point(target_six + k * H).consumption for k in range(1, 7)] == [
        Decimal(v) for v in ["1.2", "2.4", "3.6", "2.4", "1.2", "1.2"]]


def test_t04_an_open_gap_is_estimated_from_adu_and_re_estimated_when_the_next_read_comes(meter):
    m = meter(D)
    for day in range(8):
        m.read(T0 + day * D, Decimal(100 + 10 * day))
    first = m.estimate(until=T0 + 9 * D, now=T0 + 12 * D)
    assert [(p.point.at, p.point.registers[0].value, p.version) for p in first.points] == [
        (T0 + 8 * D, Decimal(180), 1), (T0 + 9 * D, Decimal(190), 1)]
    assert {p.point.method for p in first.points} == {EstimationMethod.AVERAGE_DAILY_USAGE}
    closing = m.read(T0 + 10 * D, "203.0")
    corrected = {p.point.at: p for p in closing.points if p.version == 2}
    assert [corrected[T0 + k * D].point.registers[0].value for k in (8, 9)] == [Decimal(181), Decimal(192)]
    assert {c.reason for c in corrected.values()} == {CorrectionReason.RE_ESTIMATED}
    assert corrected[T0 + 8 * D].supersedes == first.points[0].publication_id
    assert m.point(T0 + 10 * D).consumption == Decimal(11)
    daily = {c.start: c for c in closing.buckets if c.granularity is Granularity.DAY}
    assert (daily[T0 + 7 * D].delta, daily[T0 + 8 * D].delta, daily[T0 + 9 * D].delta) == (1, 1, 11)


def test_t05_rollover_through_the_dials_is_accepted_near_the_top(meter):
    m = meter(D, dial_count=5)
    for day, value in enumerate(["99950", "99990", "00025", "00070"]):
        m.read(T0 + day * D, value)
    assert [m.point(T0 + k * D).consumption for k in (1, 2, 3)] == [40, 35, 45]
    wrapped = m.point(T0 + 2 * D)
    assert wrapped.status is ValidationStatus.ACTUAL and Check.ROLLOVER in wrapped.checks
    eight = meter(D, dial_count=8)
    eight.read(T0, "99999678")
    eight.read(T0 + D, "00000123")
    assert eight.point(T0 + D).consumption == 445  # 10^8 - 99999678 + 123, not 444


def test_t06_an_implausible_wrap_is_a_misread_and_re_estimated(meter):
    m = meter(D, dial_count=5)
    for day, value in enumerate(["45210", "45250", "45190"]):
        m.read(T0 + day * D, value)
    assert m.point(T0 + 2 * D).status is ValidationStatus.FAILED
    m.read(T0 + 3 * D, "45290")
    failed = m.point(T0 + 2 * D)
    assert (failed.status, failed.method) == (ValidationStatus.ESTIMATED, EstimationMethod.REGISTER_SPREAD)
    assert Check.NEGATIVE in failed.checks and m.register(T0 + 2 * D) == 45270
    assert [failed.consumption, m.point(T0 + 3 * D).consumption] == [20, 20]
    assert len(m.raised(AlarmType.NEGATIVE_CONSUMPTION)) == 1


def test_t07_consumption_across_a_meter_swap_uses_removal_and_installation_reads(meter):
    swap = T0 + D + 12 * H
    old = MeterDevice(meter_id="OLD", multiplier=Decimal(1), removed_at=swap, removal_reading=Decimal("8518.0"))
    new = MeterDevice(meter_id="NEW", multiplier=Decimal(1), installed_at=swap, installation_reading=Decimal("3.0"))
    m = meter(D, devices=[old, new])
    m.read(T0, "8500.0", meter_id="OLD")
    m.read(T0 + D, "8512.0", meter_id="OLD")
    m.read(T0 + 2 * D, "12.0", meter_id="NEW")
    across = m.point(T0 + 2 * D)
    assert (across.status, across.consumption, across.meter_id) == (ValidationStatus.ACTUAL, Decimal("15.0"), "NEW")
    assert across.previous_at == T0 + D
    assert not {Check.NEGATIVE, Check.ROLLOVER} & set(across.checks)


def test_t08_multiplier_applies_and_a_different_payload_multiplier_is_held(meter):
    m = meter(D, utility=Utility.ELECTRICITY, unit=Unit.KWH, multiplier="40", resolution="0.1")
    m.read(T0, "1520.3")
    m.read(T0 + D, "1521.1")
    assert m.point(T0 + D).consumption == 32
    m.read(T0 + 2 * D, "1521.9", multiplier=Decimal(80))
    held = m.point(T0 + 2 * D)
    assert (held.status, held.consumption) == (ValidationStatus.FAILED, None) and Check.MULTIPLIER in held.checks
    device = MeterDevice(meter_id="EM-1", multiplier=Decimal(40), resolution=Decimal(1))
    assert open_ended_register(Decimal(1521), Decimal("3.345"), Decimal(29), device) == 1523


def _spiky_day(m, last_three):
    register = Decimal(100)
    m.read(T0, register)
    for hour, use in enumerate([Decimal(1)] * 21 + [Decimal(v) for v in last_three], start=1):
        register += use
        m.read(T0 + hour * H, register)


def test_t09_a_spike_fails_against_the_third_highest_interval(meter):
    m = meter()
    _spiky_day(m, ["9.0", "2.0", "1.8"])  # 9.0 / 1.8 = 5.0 > 3
    spike = m.point(T0 + 22 * H)
    assert spike.status is ValidationStatus.ESTIMATED and Check.SPIKE in spike.checks
    assert spike.consumption + m.point(T0 + 23 * H).consumption == Decimal("11.0")  # the register total stays
    calm = meter()
    _spiky_day(calm, ["9.0", "8.5", "8.0"])  # 9.0 / 8.0 = 1.125
    assert {p.status for p in calm.points.values()} == {ValidationStatus.ACTUAL}


def test_t10_sum_check_within_two_multipliers_and_scaling_to_the_register():
    parameters = VeeParameters()
    assert sum_within_tolerance(Decimal("24.6"), Decimal("23.9"), Decimal(1), parameters)
    assert not sum_within_tolerance(Decimal("24.6"), Decimal("21.0"), Decimal(1), parameters)
    scaled = scale_to_register([Decimal("1.05"), Decimal("19.95")], [False, False], Decimal("24.6"))
    assert scaled[0] == Decimal("1.23") and sum(scaled) == Decimal("24.6")
    only_estimates = scale_to_register([Decimal("20.0"), Decimal("1.0")], [False, True], Decimal("24.6"))
    assert only_estimates == (Decimal("20.0"), Decimal("4.6"))


def test_t07_the_old_meters_reads_arriving_after_the_new_ones_still_span_the_swap(meter):
    # Two meters, two Kafka keys: the new meter's first read may be validated before the old one's last.
    swap = T0 + D + 12 * H
    old = MeterDevice(meter_id="OLD", multiplier=Decimal(1), removed_at=swap, removal_reading=Decimal("8518.0"))
    new = MeterDevice(meter_id="NEW", multiplier=Decimal(1), installed_at=swap, installation_reading=Decimal("3.0"))
    m = meter(D, devices=[old, new])
    m.read(T0 + 2 * D, "12.0", meter_id="NEW")
    m.read(T0, "8500.0", meter_id="OLD")
    m.read(T0 + D, "8512.0", meter_id="OLD")
    across = m.point(T0 + 2 * D)
    assert (across.status, across.consumption, across.meter_id) == (ValidationStatus.ACTUAL, Decimal("15.0"), "NEW")
    assert across.previous_at == T0 + D
