"""vee.md §6 scenarios T11-T20 with the spec's numbers: consumption, water and district alarms, versions, clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.alarms import AlarmSeverity, AlarmType
from amiflow_schemas.events.readings import CorrectionReason, EstimationMethod, ValidationStatus
from amiflow_schemas.primitives import Unit, Utility
from vee.core.aggregation import Bucket, fold_group
from vee.core.checks import high_or_low
from vee.core.context import InactivePeriod
from vee.core.district import (
    DistrictState,
    assess_night,
    evaluate_district,
    legitimate_night_use,
    minimum_hour,
    night_flow_baseline,
    unavoidable_annual_real_losses,
    water_balance,
)
from vee.core.grid import Granularity
from vee.core.model import Check, ReadFlag
from vee.core.rules import ObjectGroups, RuleSet, VeeParameters

H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def test_t11_seven_zero_days_stop_the_meter_unless_an_outage_explains_them(meter):
    m = meter(D)
    for day in range(8):
        m.read(T0 + day * D, "3250")
    [stopped] = m.raised(AlarmType.NO_CONSUMPTION)
    assert (stopped.condition.started_at, stopped.condition.detected_at) == (T0, T0 + 7 * D)
    outage = meter(D)
    for day in range(8):
        outage.read(T0 + day * D, "3250", flags=(ReadFlag.POWER_FAILURE,))
    assert outage.raised(AlarmType.NO_CONSUMPTION) == []
    assert all(Check.OUTAGE in p.checks for p in outage.points.values())


def test_t11_usage_on_an_inactive_account_is_an_issue_and_not_billed(meter):
    m = meter(D, inactive=(InactivePeriod(start=T0 - D),))
    m.read(T0, "5000")
    m.read(T0 + D, "5012")
    used = m.point(T0 + D)
    assert (used.status, used.consumption, used.billable) == (ValidationStatus.FAILED, Decimal(12), False)
    assert Check.INACTIVE_USAGE in used.checks
    [alarm] = m.raised(AlarmType.USAGE_ON_INACTIVE_METER)
    assert alarm.condition.observed == 12


def test_t12_high_and_low_against_average_daily_use():
    parameters = VeeParameters()
    assert high_or_low(Decimal("30.0"), Decimal(30), Decimal("0.40"), parameters) is Check.HIGH  # 250 %, >= 5
    assert high_or_low(Decimal("5.4"), Decimal(30), Decimal("0.40"), parameters) is Check.LOW  # 45 %
    assert high_or_low(Decimal("4.9"), Decimal(5), Decimal("0.40"), parameters) is None  # 245 % but < 5 units


LEAK_LITRES = [6, 7, 6, 8, 7, 6, 40, 90, 30, 15, 10, 12, 9, 8, 11, 25, 60, 80, 45, 20, 15, 10, 8, 7]


def _hourly_litres(m, litres):
    register = Decimal("120.000")
    m.read(T0, register)
    for hour, used in enumerate(litres, start=1):
        register += Decimal(used) / 1000
        m.read(T0 + hour * H, register)


def test_t13_flow_in_every_hour_of_a_day_is_a_leak_at_the_lowest_hours_rate(meter, rules):
    m = meter()
    _hourly_litres(m, LEAK_LITRES)
    [leak] = m.raised(AlarmType.CONTINUOUS_FLOW)
    assert sum(LEAK_LITRES) == 535
    assert (leak.condition.detected_at, leak.condition.observed) == (T0 + 24 * H, Decimal("0.006"))
    assert "0.144 m3/day" in leak.condition.description and "27 %" in leak.condition.description
    dry_hour = meter()
    _hourly_litres(dry_hour, [*LEAK_LITRES[:10], 0, *LEAK_LITRES[11:]])
    assert dry_hour.raised(AlarmType.CONTINUOUS_FLOW) == []
    gallon = meter(rules=rules(leak_min_hourly=Decimal("0.003785")))
    _hourly_litres(gallon, [3 if litres == 6 else litres for litres in LEAK_LITRES])
    assert gallon.raised(AlarmType.CONTINUOUS_FLOW) == []


def test_t14_flow_above_ten_percent_of_q3_for_half_an_hour_is_a_burst(meter):
    m = meter(timedelta(minutes=5), q3_m3_per_h=Decimal("2.5"))
    start = T0 + 10 * H
    for step in range(7):
        m.read(start + step * timedelta(minutes=5), Decimal("5.000") + Decimal("0.025") * step)
    [burst] = m.raised(AlarmType.BURST)
    assert (burst.condition.detected_at, burst.condition.observed) == (start + 30 * timedelta(minutes=1),
                                                                       Decimal("0.3"))
    assert burst.condition.threshold == Decimal("0.25") and m.cleared(AlarmType.BURST) == []
    m.read(start + 35 * timedelta(minutes=1), "5.160")
    [cleared] = m.cleared(AlarmType.BURST)
    assert (cleared.alarm_id, cleared.cleared_at) == (burst.alarm_id, start + 35 * timedelta(minutes=1))


def test_t15_a_small_run_back_is_backflow_reported_not_billed_as_negative(meter):
    m = meter(dial_count=8, resolution="0.001")
    for hour, value in enumerate(["1000.000", "999.985", "1000.010"]):
        m.read(T0 + hour * H, value)
    back, forward = m.point(T0 + H), m.point(T0 + 2 * H)
    assert (back.status, back.consumption, back.reverse_volume) == (ValidationStatus.ACTUAL, 0, Decimal("0.015"))
    assert Check.REVERSE_FLOW in back.checks and forward.consumption == Decimal("0.010")  # net 10 L billed
    [backflow] = m.raised(AlarmType.BACKFLOW)
    assert backflow.condition.severity is AlarmSeverity.WARNING  # minor: 1 < 15 counts <= 100
    assert [c.alarm_id for c in m.cleared(AlarmType.BACKFLOW)] == [backflow.alarm_id]


def _day_bucket(consumption: str, estimated: bool = False) -> Bucket:
    seconds = Decimal(86400)
    return Bucket(Granularity.DAY, T0, T0 + D, Decimal(consumption), seconds, seconds if estimated else Decimal(0))


def test_t16_district_balance_is_provisional_below_98_percent_actual_reads():
    customers = fold_group([[_day_bucket("2.125", estimated=i < 12)] for i in range(480)])
    [day] = customers
    balance = water_balance(_day_bucket("1250"), day, 480, VeeParameters())
    assert (balance.customer_use, balance.non_revenue) == (Decimal("1020.000"), Decimal("230.000"))
    assert balance.non_revenue_share.quantize(Decimal("0.001")) == Decimal("0.184")
    assert (balance.actual_coverage, balance.provisional) == (Decimal("0.975"), True)
    with pytest.raises(ValueError, match="same local window"):  # align day boundaries first
        water_balance(Bucket(Granularity.DAY, T0 + H, T0 + D + H, Decimal(1250), Decimal(86400), Decimal(0)), day,
                      480, VeeParameters())
    assert unavoidable_annual_real_losses(Decimal(10), 1000, Decimal(2), Decimal(50)) == 51500  # L/day


def _hour(start_hour: int, m3: str) -> Bucket:
    return Bucket(Granularity.HOUR, T0 + start_hour * H, T0 + (start_hour + 1) * H, Decimal(m3), Decimal(3600),
                  Decimal(0))


def test_t17_minimum_night_flow_above_its_baseline_raises_a_night_flow_alarm():
    parameters = VeeParameters()
    inflow = [_hour(1, "25"), _hour(2, "18"), _hour(3, "16"), _hour(4, "30")]
    low = minimum_hour(inflow, T0.date(), ZoneInfo("UTC"), parameters)
    assert low is not None and low.start == T0 + 3 * H
    [ami] = fold_group([[_hour(3, "4.2")]])
    night = assess_night(low, ami, None, Decimal("12.0"), Decimal("1250"), parameters)
    assert (night.minimum_night_flow, night.net_night_flow) == (16, Decimal("11.8"))
    assert night.rise.quantize(Decimal("0.01")) == Decimal("0.33") and night.alarm
    assert night.to_average_flow.quantize(Decimal("0.01")) == Decimal("0.31")  # 16 / 52.1 < 50 %, still alarmed
    assert legitimate_night_use(None, 3000, parameters) == Decimal("1.8")  # 3000 x 6 % x 10 L
    nights = [Decimal(v) for v in ("12", "13", "11.5", "14", "12.5", "12", "13")]
    assert night_flow_baseline(nights, parameters) == 12  # UKWIR: 20th percentile of the last 7 nights
    timeline = RuleSet(tenant_id="demo").timeline(ObjectGroups(district="DMA-7"))
    state, facts = evaluate_district(DistrictState(district_id="DMA-7"), "demo", None, night, timeline, T0 + 4 * H)
    assert [f.condition.kind for f in facts] == [AlarmType.NIGHT_FLOW] and state.episodes[0].ended_at is None
    calm = assess_night(low, ami, None, Decimal("14.0"), Decimal("1250"), parameters)  # +14 %
    state, facts = evaluate_district(state, "demo", None, calm, timeline, T0 + D + 4 * H)
    assert [f.kind for f in facts] == [AlarmType.NIGHT_FLOW] and state.episodes[0].ended_at == T0 + D + 4 * H


def test_t18_estimating_past_five_days_since_the_last_actual_calls_for_a_field_visit(meter):
    m = meter(D)
    for day in range(-7, 1):
        m.read(T0 + day * D, Decimal(500 + 4 * (day + 7)))
    m.estimate(until=T0 + 6 * D, now=T0 + 6 * D + H)
    assert [m.point(T0 + k * D).status for k in range(1, 7)] == [ValidationStatus.ESTIMATED] * 6
    [visit] = m.raised(AlarmType.PROLONGED_ESTIMATION)
    assert visit.condition.detected_at == T0 + 6 * D  # D6 > D0 + 5 d; D5 is not yet
    m.read(T0 + 7 * D, "560")
    assert [c.alarm_id for c in m.cleared(AlarmType.PROLONGED_ESTIMATION)] == [visit.alarm_id]


def _four_hours(m):
    for hour in range(4):
        m.read(T0 + hour * H, Decimal("10.00") + Decimal("1.20") * hour)


def test_t19_a_late_actual_replaces_the_estimate_and_re_derives_the_bill(meter, rules):
    m = meter(rules=rules(estimation_wait=H))
    _four_hours(m)
    [estimate] = m.estimate(until=T0 + 4 * H, now=T0 + 5 * H).points
    assert (estimate.version, estimate.point.consumption) == (1, Decimal("1.20"))
    assert estimate.point.method is EstimationMethod.LINEAR_INTERPOLATION
    late = m.read(T0 + 4 * H, "14.86", now=T0 + 6 * H)
    [actual] = late.points
    assert (actual.version, actual.reason, actual.supersedes) == (2, CorrectionReason.LATE_ACTUAL,
                                                                  estimate.publication_id)
    assert (actual.point.status, actual.point.consumption) == (ValidationStatus.ACTUAL, Decimal("1.26"))
    hourly = [c for c in late.buckets if c.granularity is Granularity.HOUR]
    assert [(c.start, c.delta) for c in hourly] == [(T0 + 3 * H, Decimal("0.06"))]


def test_t19_an_actual_for_a_manually_edited_slot_is_held(meter):
    m = meter()
    _four_hours(m)
    m.edit(T0 + 4 * H, "14.80", edited_at=T0 + 5 * H)
    assert m.point(T0 + 4 * H).status is ValidationStatus.EDITED
    late = m.read(T0 + 4 * H, "14.86", now=T0 + 6 * H)
    assert late.points == () and late.buckets == ()
    held = m.point(T0 + 4 * H)
    assert (held.status, held.consumption) == (ValidationStatus.EDITED, Decimal("1.20"))
    assert Check.HELD_BY_EDIT in held.checks and [p.point for p in late.revised] == [held]  # stored, not sent


def test_t20_a_clock_off_by_seven_and_a_half_minutes_is_adjusted_and_flagged(meter):
    m = meter(utility=Utility.ELECTRICITY, unit=Unit.KWH)
    m.read(T0 + 9 * H, "100.0")
    m.read(T0 + 10 * H + timedelta(minutes=7, seconds=30), "101.0")
    adjusted = m.point(T0 + 10 * H)
    assert (adjusted.status, adjusted.consumption) == (ValidationStatus.ACTUAL, Decimal("1.0"))  # energy kept
    assert {Check.CLOCK_ADJUSTED, Check.DEMAND_EXCLUDED} <= set(adjusted.checks)
    m.read(T0 + 11 * H + timedelta(seconds=20), "102.0")
    assert m.point(T0 + 11 * H).checks == ()  # within 30 s
    m.read(T0 + 12 * H + timedelta(minutes=20), "103.0")
    assert Check.CLOCK_INVALID in m.point(T0 + 12 * H).checks
    assert len(m.raised(AlarmType.CLOCK_DRIFT)) == 1
