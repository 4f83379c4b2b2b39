"""Virtual meters: registers follow a diurnal usage curve that never runs backwards, leaks flow at
night, valves and relays stop consumption, clocks drift and can be set, all exact and seeded."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.commands import RelayAction, ValveAction
from amiflow_schemas.primitives import RelayState, ValveState
from ingest.core.protocols import WallClock
from ingest.simulator import ElectricityMeter, FlowMeter, HeatMeter, MeterKind, MeterSpec, Traits, ValvePosition
from ingest.simulator.consumption import SHAPES, UsageCurve
from ingest.simulator.electricity import TARIFF_HOURS, RelayRefused

TZ = ZoneInfo("Asia/Shanghai")
EPOCH = datetime(2025, 1, 1, tzinfo=TZ)
NOW = datetime(2026, 11, 21, 9, 0, tzinfo=TZ)


def curve(kind: str = "water", daily: str = "0.500", leak: str = "0", seed: str = "s") -> UsageCurve:
    return UsageCurve.draw(random.Random(seed), EPOCH, SHAPES[kind], Decimal(daily), Decimal(leak))


def water(traits: Traits | None = None, leak: str = "0") -> FlowMeter:
    return FlowMeter(MeterSpec("WM-1", MeterKind.WATER, "02010000000001", curve(leak=leak), Decimal("12.34"),
                               traits or Traits()), TZ)


def electricity() -> ElectricityMeter:
    return ElectricityMeter(MeterSpec("EM-1", MeterKind.ELECTRICITY, "000000000001", curve("electricity", "9"),
                                      Decimal("100")), TZ)


def test_use_is_a_pure_monotone_function_of_time() -> None:
    first, again = curve(), curve()
    moments = [NOW + timedelta(minutes=7 * i) for i in range(500)]
    values = [first.used(at) for at in moments]

    assert values == [again.used(at) for at in reversed(moments)][::-1]  # order of reading does not matter
    assert all(a < b for a, b in itertools.pairwise(values))
    assert curve().used(EPOCH) == 0 and curve().used(EPOCH - timedelta(days=3)) == 0


def test_a_day_is_continuous_across_midnight() -> None:
    midnight = datetime(2026, 3, 5, tzinfo=TZ)
    before, after = curve().used(midnight - timedelta(microseconds=1)), curve().used(midnight)

    assert Decimal(0) <= after - before < Decimal("1E-8")


def test_mornings_and_evenings_use_more_than_nights() -> None:
    day = datetime(2026, 3, 5, tzinfo=TZ)
    rate = {hour: curve().rate(day + timedelta(hours=hour, minutes=30)) for hour in range(24)}

    assert rate[7] > 4 * rate[3] and rate[19] > 4 * rate[3]
    one_day = curve().used(day + timedelta(days=1)) - curve().used(day)
    assert Decimal("0.3") < one_day < Decimal("0.7")  # about the 0.5 m3 a day it was drawn with


def test_a_leak_flows_at_night_too() -> None:
    night = datetime(2026, 3, 5, 3, tzinfo=TZ)
    tight, leaking = curve(), curve(leak="0.012")

    assert leaking.rate(night) - tight.rate(night) == Decimal("0.012")
    assert leaking.used(night + timedelta(hours=1)) - leaking.used(night) > Decimal("0.012")


def test_a_closed_valve_stops_the_register_and_the_missed_use_is_not_caught_up() -> None:
    meter = water(leak="0.010")
    closed_at, opened_at = NOW, NOW + timedelta(hours=6)
    at_close = meter.reading(closed_at).total

    assert meter.operate_valve(ValveAction.CLOSE, closed_at)
    assert meter.reading(opened_at).total == at_close
    assert meter.valve is ValvePosition.CLOSED and meter.valve_state is ValveState.CLOSED

    assert meter.operate_valve(ValveAction.OPEN, opened_at)
    later = opened_at + timedelta(hours=2)
    expected = meter.spec.curve.used(later) - meter.spec.curve.used(opened_at) + meter.spec.curve.used(closed_at)
    assert meter.reading(later).total == (meter.spec.initial + expected).quantize(Decimal("0.01"), "ROUND_DOWN")


def test_exercise_and_half_open_keep_water_flowing_and_st_reports_open() -> None:
    meter = water()

    assert meter.operate_valve(ValveAction.EXERCISE, NOW) and meter.valve is ValvePosition.OPEN
    assert meter.operate_valve(ValveAction.HALF_OPEN, NOW) and meter.valve is ValvePosition.HALF_OPEN
    assert meter.valve_state is ValveState.OPEN and meter.supplied
    assert not meter.operate_valve(None, NOW)  # a code the model does not know


def test_a_heat_meter_has_no_valve_and_its_heat_follows_volume() -> None:
    spec = MeterSpec("HM-1", MeterKind.HEAT, "02010000000002", curve("heat", "1.5"), Decimal("2"),
                     delta_t=Decimal("20.00"))
    meter = HeatMeter(spec, TZ)
    reading = meter.reading(NOW)

    assert not meter.operate_valve(ValveAction.CLOSE, NOW) and meter.supplied
    volume = spec.initial + spec.curve.used(NOW)
    assert reading.volume == volume.quantize(Decimal("0.01"), "ROUND_DOWN")
    assert reading.heat == (volume * 20 * Decimal("1.163")).quantize(Decimal("0.01"), "ROUND_DOWN")
    assert reading.supply_c - reading.return_c == Decimal("20.00")
    assert reading.working_hours == (NOW - EPOCH) // timedelta(hours=1)
    assert reading.settlement_heat <= reading.heat


def test_the_clock_drifts_by_the_meter_offset_and_a_time_write_sets_it() -> None:
    meter = water(Traits(clock_drift_s=-95))
    true_time = datetime(2026, 11, 21, 1, 0, 30, 250_000, tzinfo=UTC)

    assert meter.clock_time(true_time) == datetime(2026, 11, 21, 8, 58, 55, tzinfo=TZ)
    meter.set_clock(WallClock(2026, 11, 21, 9, 0, 30), true_time)
    assert meter.clock(true_time + timedelta(seconds=10)) == WallClock(2026, 11, 21, 9, 0, 40)


def test_registers_are_exact_cents() -> None:
    reading = water().reading(NOW)

    assert reading.total == reading.total.quantize(Decimal("0.01"))
    assert reading.settlement <= reading.total
    assert reading.battery_low is False and water(Traits(battery_low=True)).reading(NOW).battery_low


def test_tariff_registers_split_the_day_and_sum_to_the_total() -> None:
    meter = electricity()
    before, after = meter.energy(NOW), meter.energy(NOW + timedelta(days=1))

    assert sorted(h for hours in TARIFF_HOURS.values() for h in hours) == list(range(24))
    assert after.total == sum(after.tariffs)
    assert all(b < a for b, a in zip(before.tariffs, after.tariffs, strict=True))  # every period had some use


def test_a_trip_stops_energy_until_a_close() -> None:
    meter = electricity()
    meter.operate_relay(RelayAction.TRIP, NOW)
    later = NOW + timedelta(hours=5)

    assert meter.relay is RelayState.DISCONNECTED and meter.energy(later) == meter.energy(NOW)
    assert meter.instant(later).power == 0 and meter.instant(later).current == 0
    assert meter.status_word(3) == 0x50  # relay open + trip commanded

    meter.operate_relay(RelayAction.CLOSE_ALLOWED, later)
    assert meter.relay is RelayState.CLOSE_ALLOWED and meter.status_word(3) == 0x10
    assert meter.energy(later + timedelta(hours=1)) == meter.energy(NOW)  # still off until the button

    assert meter.press_button(later + timedelta(hours=1))
    assert meter.relay is RelayState.CONNECTED and meter.status_word(3) == 0
    assert meter.energy(later + timedelta(hours=3)).total > meter.energy(NOW).total


def test_close_allowed_on_a_connected_relay_changes_nothing_and_keep_power_blocks_a_trip() -> None:
    meter = electricity()
    meter.operate_relay(RelayAction.CLOSE_ALLOWED, NOW)
    assert meter.relay is RelayState.CONNECTED

    meter.operate_relay(RelayAction.KEEP_POWER, NOW)
    with pytest.raises(RelayRefused):
        meter.operate_relay(RelayAction.TRIP, NOW)
    meter.operate_relay(RelayAction.ALARM, NOW)
    assert meter.status_word(3) == (1 << 12) | (1 << 7)

    meter.operate_relay(RelayAction.KEEP_POWER_RELEASE, NOW)
    meter.operate_relay(RelayAction.TRIP, NOW)
    assert meter.relay is RelayState.DISCONNECTED


def test_instantaneous_values_are_consistent_and_exact() -> None:
    instant = electricity().instant(NOW)

    assert instant.voltage == instant.voltage.quantize(Decimal("0.1"))
    assert Decimal(213) <= instant.voltage <= Decimal(227)
    assert instant.current == (instant.power * 1000 / instant.voltage).quantize(Decimal("0.001"))
