"""The validation checks one by one (vee.md §1): what each flags, fails or lets through."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from amiflow_schemas.events.alarms import AlarmType
from amiflow_schemas.events.readings import EstimationMethod, RegisterValue, ValidationStatus
from amiflow_schemas.primitives import Unit, Utility
from vee.core.checks import billing_quality, completeness
from vee.core.context import LoadProfile, MeterDevice
from vee.core.model import Check, ReadFlag
from vee.core.rules import VeeParameters

H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def test_v1_a_local_day_holds_23_or_25_hourly_slots_across_dst(meter):
    berlin = meter(zone="Europe/Berlin").context
    assert [berlin.grid.slots_per_day(date(2026, 3, d)) for d in (28, 29, 30)] == [24, 23, 24]
    assert berlin.grid.slots_per_day(date(2026, 10, 25)) == 25
    quarter = meter(timedelta(minutes=15), zone="America/New_York").context
    assert [quarter.grid.slots_per_day(date(2026, 3, 8)), quarter.grid.slots_per_day(date(2026, 11, 1))] == [92, 100]
    assert meter(zone="Asia/Shanghai").context.grid.slots_per_day(date(2026, 3, 29)) == 24


def test_v1_completeness_counts_what_a_day_holds(meter):
    m = meter()
    for hour in (0, 1, 2, 5):
        m.read(T0 + hour * H, Decimal(hour))
    day = completeness(list(m.points.values()), T0.date(), m.context)
    assert (day.expected, day.by_status[ValidationStatus.ACTUAL], day.by_status[ValidationStatus.ESTIMATED]) == (
        24, 4, 2)
    assert day.missing == 18


def test_v2_an_identical_duplicate_is_dropped_and_a_differing_one_loses_to_newer_data(meter):
    m = meter()
    m.read(T0, "10.0")
    m.read(T0, "10.0", salt="again")
    assert m.point(T0).checks == () and len(m.points) == 1
    for first, second in (("11.0", "11.2"), ("11.2", "11.0")):
        both = meter()
        values = {"11.0": T0 + 2 * H, "11.2": T0 + 3 * H}  # 11.2 reached the head-end later
        for value in (first, second):
            both.read(T0 + H, value, received_at=values[value])
        assert both.register(T0 + H) == Decimal("11.2") and Check.CONFLICT in both.point(T0 + H).checks


def test_v4_reads_that_fit_no_device_are_rejected_outright(meter):
    m = meter()
    stranger = m.read(T0, "1.0", meter_id="OTHER")
    assert [r.checks for r in stranger.rejected] == [(Check.CONFIGURATION,)] and m.points == {}
    wrong_unit = m.read(T0, "1.0", unit=Unit.KWH)
    assert [r.checks for r in wrong_unit.rejected] == [(Check.CONFIGURATION,)]
    fitted = meter(devices=[MeterDevice(meter_id="M-1", multiplier=Decimal(1), installed_at=T0 + D)])
    assert fitted.read(T0, "1.0").rejected[0].checks == (Check.CONFIGURATION,)


def test_v5_a_value_wider_than_the_dials_fails(meter):
    m = meter(D, dial_count=5)
    m.read(T0, "99000")
    m.read(T0 + D, "100020")
    assert m.point(T0 + D).status is ValidationStatus.FAILED and Check.DIAL_OVERFLOW in m.point(T0 + D).checks


def test_v3_a_clock_the_device_calls_invalid_fails_the_read(meter):
    m = meter()
    m.read(T0, "1.0")
    m.read(T0 + H, "2.0", flags=(ReadFlag.CLOCK_INVALID,))
    m.read(T0 + 2 * H, "3.0")
    invalid = m.point(T0 + H)
    assert invalid.status is ValidationStatus.ESTIMATED and Check.CLOCK_INVALID in invalid.checks


def test_v7_a_large_run_back_the_device_reported_is_major_backflow(meter):
    m = meter(D, dial_count=8, resolution="0.001")
    m.read(T0, "500.000")
    m.read(T0 + D, "500.900")
    m.read(T0 + 2 * D, "500.300", flags=(ReadFlag.REVERSE_FLOW,))  # 600 counts > a day's use, flagged
    back = m.point(T0 + 2 * D)
    assert (back.status, back.reverse_volume) == (ValidationStatus.ACTUAL, Decimal("0.600"))
    [alarm] = m.raised(AlarmType.BACKFLOW)
    assert alarm.condition.severity.value == "critical"


def test_v7_a_run_back_of_one_count_is_encoder_jitter_not_backflow(meter):
    m = meter(dial_count=8, resolution="0.001")
    for hour, value in enumerate(["10.000", "9.999", "10.004"]):
        m.read(T0 + hour * H, value)
    assert Check.REVERSE_FLOW not in m.point(T0 + H).checks and m.raised(AlarmType.BACKFLOW) == []
    assert m.point(T0 + 2 * H).consumption == Decimal("0.004")


def test_v8_without_a_dial_count_a_drop_is_never_a_rollover(meter):
    m = meter(D)
    for day, value in enumerate(["99950", "99990", "25"]):
        m.read(T0 + day * D, value)
    assert Check.NEGATIVE in m.point(T0 + 2 * D).checks


def test_v11_a_day_far_above_the_average_is_flagged_high(meter):
    m = meter(D)
    for day in range(9):
        m.read(T0 + day * D, Decimal(100 + day))
    m.read(T0 + 9 * D, "120")  # 12 units vs ADU 1: > 200 % and >= 5
    assert Check.HIGH in m.point(T0 + 9 * D).checks
    assert [a.condition.threshold for a in m.raised(AlarmType.HIGH_CONSUMPTION)] == [Decimal(200)]


def test_v12_needs_three_intervals_and_a_nonzero_third(meter):
    m = meter()
    for hour, value in enumerate(["1", "1", "1", "9"]):  # intervals 0, 0, 8: third highest is zero
        m.read(T0 + hour * H, value)
    assert {p.status for p in m.points.values()} == {ValidationStatus.ACTUAL}


def test_v13_time_of_use_registers_must_add_up_to_the_total(meter):
    m = meter(utility=Utility.ELECTRICITY, unit=Unit.KWH)

    def tou(t1: str, t2: str) -> tuple[RegisterValue, ...]:
        return (RegisterValue(register="T1", value=Decimal(t1), unit=Unit.KWH),
                RegisterValue(register="T2", value=Decimal(t2), unit=Unit.KWH))

    m.read(T0, "100", registers=tou("60", "40"))
    m.read(T0 + H, "110", registers=tou("66", "44"))
    m.read(T0 + 2 * H, "120", registers=tou("66", "47"))  # TOU moved 3, total 10: off by more than 2
    consistent, off = m.point(T0 + H), m.point(T0 + 2 * H)
    assert Check.SUM not in consistent.checks
    assert {r.register: r.value for r in consistent.register_consumption} == {"total": 10, "T1": 6, "T2": 4}
    assert Check.SUM in off.checks


def test_v16_holds_billing_above_two_percent_estimated_or_missing(meter):
    m = meter()
    for hour in [*range(0, 10), *range(11, 51)]:
        m.read(T0 + hour * H, Decimal(hour))
    points = list(m.points.values())
    quality = billing_quality(points, 51, VeeParameters())
    assert (quality.not_actual, quality.hold) == (1, False)  # 1 / 51 = 1.96 %
    assert billing_quality(points[:40], 40, VeeParameters()).hold  # 1 / 40 = 2.5 %


def test_v17_a_gap_estimate_that_is_the_days_spike_is_flagged(meter):
    weights = tuple(Decimal(20) if hour == 12 else Decimal(1) for hour in range(24))
    profile = LoadProfile(name="res", hourly_weights=weights, daily_weights=(Decimal(1),) * 7)
    m = meter(profile=profile)
    for hour in range(11):
        m.read(T0 + hour * H, Decimal("0.1") * hour)
    m.read(T0 + 14 * H, Decimal("9.0"))
    peak = m.point(T0 + 13 * H)
    assert (peak.status, peak.method) == (ValidationStatus.ESTIMATED, EstimationMethod.PROFILE)
    assert Check.IMPLAUSIBLE_ESTIMATE in peak.checks
    assert sum(m.point(T0 + h * H).consumption for h in (11, 12, 13, 14)) == Decimal("8.0")


def test_v15_a_change_below_both_thresholds_is_not_worth_a_correction(meter, rules):
    m = meter(rules=rules(replacement_min_change=Decimal("0.01"), replacement_min_share=Decimal("0.05")))
    m.read(T0, "10.000")
    m.read(T0 + 3 * H, "13.000", received_at=T0 + 3 * H)
    trivial = m.read(T0 + 3 * H, "13.003", received_at=T0 + 4 * H)  # newer, but 1 L an hour is noise
    assert trivial.points == () and m.register(T0 + 3 * H) == Decimal("13.000")
    real = m.read(T0 + 3 * H, "13.600", received_at=T0 + 5 * H)
    assert {p.point.at for p in real.points} == {T0 + h * H for h in (1, 2, 3)}
