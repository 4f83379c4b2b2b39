"""Meter-side frames: every kind of reply a virtual meter sends decodes with the head-end's own codec
to exactly the meter's state (registers, clock, valve, relay, battery), including refusals."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.commands import RelayAction, ValveAction
from amiflow_schemas.primitives import RelayState, ValveState
from ingest.core.protocols import (
    DecodedFrame,
    Direction,
    WallClock,
    cjt188_read,
    cjt188_valve,
    cjt188_write_time,
    decode_frame,
    device_status,
    dlt645_broadcast_time,
    dlt645_read,
    dlt645_relay,
    meter_time,
    register_values,
)
from ingest.profiles import load_profile
from ingest.simulator import ElectricityMeter, FlowMeter, HeatMeter, MeterKind, MeterSpec, ReplyKind, Traits
from ingest.simulator.bus import MeterBus
from ingest.simulator.consumption import SHAPES, UsageCurve
from ingest.simulator.replies import Reply

TZ = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 11, 21, 0, 30, 12, 500_000, tzinfo=UTC)


def curve(kind: str, daily: str) -> UsageCurve:
    return UsageCurve.draw(random.Random(kind), datetime(2025, 2, 1, tzinfo=TZ), SHAPES[kind], Decimal(daily))


@pytest.fixture
def meters() -> dict[str, FlowMeter | HeatMeter | ElectricityMeter]:
    return {
        "water": FlowMeter(MeterSpec("WM-1", MeterKind.WATER, "02010000000011", curve("water", "0.4"), Decimal("7.5"),
                                     Traits(battery_low=True, clock_drift_s=-75)), TZ),
        "gas": FlowMeter(MeterSpec("GM-1", MeterKind.GAS, "02010000000012", curve("gas", "1.2"), Decimal(0),
                                   Traits(clock_drift_s=120)), TZ),
        "heat": HeatMeter(MeterSpec("HM-1", MeterKind.HEAT, "02010000000013", curve("heat", "1.8"), Decimal("3"),
                                    delta_t=Decimal("17.25")), TZ),
        "electricity": ElectricityMeter(MeterSpec("EM-1", MeterKind.ELECTRICITY, "000012345678",
                                                  curve("electricity", "8"), Decimal("42.5"),
                                                  Traits(battery_low=True)), TZ),
    }


def ask(meters: dict[str, object], request: bytes, at: datetime = AT) -> tuple[Reply, DecodedFrame]:
    reply = MeterBus(list(meters.values())).answer(request, at)  # type: ignore[arg-type]
    assert reply is not None
    frame = decode_frame(reply.frame)
    assert frame.direction is Direction.REPLY and frame.preamble_fe == 2
    return reply, frame


@pytest.mark.parametrize("kind", ["water", "gas"])
def test_a_flow_reading_decodes_to_the_meter_registers_clock_and_status(meters: dict, kind: str) -> None:
    meter = meters[kind]
    request = cjt188_read(meter.bus_address, ser=0x5A, profile=meter.profile)
    reply, frame = ask(meters, request)
    state = meter.reading(AT)

    assert (frame.address, frame.control, frame.meter_type, frame.data_id, frame.ser) == (
        meter.bus_address, 0x81, meter.profile.cjt188.meter_type, "901F", 0x5A)
    assert register_values(frame) == list(reply.registers) == [("total", state.total, "m3")]
    assert frame.value("settlement_cumulative_flow").value == state.settlement
    assert meter_time(frame, TZ) == reply.meter_clock == (AT + meter.drift).astimezone(TZ).replace(microsecond=0)
    status = device_status(frame, TZ, meter.profile)
    assert status["valve"] is ValveState.OPEN and (status["battery"].level.value == "low") is meter.battery_low
    assert (reply.valve, reply.battery_low, reply.relay) == (status["valve"], meter.battery_low, None)
    assert reply.kind is ReplyKind.READING and reply.carries_clock


def test_a_heat_reading_decodes_every_field(meters: dict) -> None:
    meter = meters["heat"]
    reply, frame = ask(meters, cjt188_read(meter.bus_address, profile=meter.profile))
    state = meter.reading(AT)
    values = {m.name: m.value for m in frame.values}

    assert register_values(frame) == list(reply.registers) == [("total", state.heat, "kWh"),
                                                                ("volume", state.volume, "m3")]
    assert values == {"settlement_heat": state.settlement_heat, "current_heat": state.heat,
                      "heat_power": state.power, "flow_rate": state.flow_rate, "cumulative_flow": state.volume,
                      "supply_temperature": state.supply_c, "return_temperature": state.return_c,
                      "working_hours": Decimal(state.working_hours)}
    assert frame.meter_clock == state.clock and device_status(frame, TZ, meter.profile)["valve"] is None
    assert reply.valve is None and reply.battery_low is False  # a heat meter has no valve to report


def test_a_valve_command_is_obeyed_and_its_reply_and_every_later_reading_show_it(meters: dict) -> None:
    meter = meters["water"]
    reply, frame = ask(meters, cjt188_valve(meter.bus_address, ValveAction.CLOSE, ser=3, profile=meter.profile))

    assert reply.kind is ReplyKind.VALVE and not frame.is_error and reply.valve is ValveState.CLOSED
    assert (frame.control, frame.data_id, frame.ser, frame.status.valve) == (0x84, "A017", 3, ValveState.CLOSED)
    later = AT + timedelta(hours=3)
    _, reading = ask(meters, cjt188_read(meter.bus_address, profile=meter.profile), later)
    assert reading.status.valve is ValveState.CLOSED
    assert register_values(reading)[0].value == meter.reading(AT).total  # nothing flowed meanwhile

    _, opened = ask(meters, cjt188_valve(meter.bus_address, ValveAction.OPEN, profile=meter.profile), later)
    assert opened.status.valve is ValveState.OPEN and meter.supplied


def test_vendor_valve_codes_come_from_the_profile(meters: dict) -> None:
    meter = meters["water"]
    meter.profile = load_profile("cjt188-water-foxedge")
    reply, frame = ask(meters, cjt188_valve(meter.bus_address, ValveAction.CLOSE, profile=meter.profile))

    assert frame.control == 0xAA and frame.status.valve is ValveState.CLOSED and reply.kind is ReplyKind.VALVE
    _, refused = ask(meters, cjt188_valve(meter.bus_address, ValveAction.OPEN))  # standard C=04: not this model's
    assert refused.is_error and refused.control == 0xC4


def test_a_low_first_model_answers_with_its_di_order(meters: dict) -> None:
    meter = meters["water"]
    meter.profile = load_profile("cjt188-water-2018")
    _, frame = ask(meters, cjt188_read(meter.bus_address, profile=meter.profile))

    assert frame.data_id == "901F" and frame.data_id_order.value == "low_first" and frame.payload_hex[:4] == "1f90"


def test_commands_the_model_cannot_do_get_the_abnormal_reply(meters: dict) -> None:
    heat = meters["heat"]
    reply, frame = ask(meters, cjt188_valve(heat.bus_address, ValveAction.CLOSE))
    assert reply.kind is ReplyKind.ABNORMAL and frame.is_error and frame.control == 0xC4 and frame.ser == 0

    water = meters["water"]
    _, unknown = ask(meters, cjt188_read(water.bus_address, "8102"))  # price table: not simulated
    assert unknown.is_error and unknown.control == 0xC1 and unknown.status.battery_low is True
    assert register_values(unknown) == []


def test_a_time_write_sets_the_clock_and_is_acknowledged(meters: dict) -> None:
    meter = meters["gas"]
    wall = WallClock(2026, 11, 21, 8, 30, 12)
    reply, frame = ask(meters, cjt188_write_time(meter.bus_address, wall, profile=meter.profile))

    assert reply.kind is ReplyKind.TIME_SET and frame.control == 0x84 and frame.data_id == "A015"
    assert meter.clock(AT) == wall and meter.clock(AT + timedelta(seconds=5)) == WallClock(2026, 11, 21, 8, 30, 17)


@pytest.mark.parametrize(("di", "registers"), [("0001FF00", ["total", "T1", "T2", "T3", "T4"]),
                                                ("00010000", ["total"])])
def test_energy_reads_decode_to_the_tariff_registers(meters: dict, di: str, registers: list[str]) -> None:
    meter = meters["electricity"]
    reply, frame = ask(meters, dlt645_read(meter.bus_address, di, profile=meter.profile))
    energy = meter.energy(AT)
    expected = dict(zip(["total", "T1", "T2", "T3", "T4"], [energy.total, *energy.tariffs], strict=True))

    assert [r.register for r in register_values(frame)] == registers
    assert register_values(frame) == list(reply.registers)
    assert {r.register: r.value for r in reply.registers} == {name: expected[name] for name in registers}
    assert all(r.unit == "kWh" for r in reply.registers) and frame.data_id == di and not reply.carries_clock


@pytest.mark.parametrize(("di", "name", "field"), [("02010100", "voltage_a", "voltage"),
                                                    ("02020100", "current_a", "current"),
                                                    ("02030000", "active_power", "power")])
def test_instantaneous_reads_decode_to_the_meter_values(meters: dict, di: str, name: str, field: str) -> None:
    meter = meters["electricity"]
    reply, frame = ask(meters, dlt645_read(meter.bus_address, di))

    assert frame.value(name).value == getattr(meter.instant(AT), field)
    assert reply.kind is ReplyKind.INSTANT and register_values(frame) == []


@pytest.mark.parametrize(("action", "state"), [(RelayAction.TRIP, RelayState.DISCONNECTED),
                                               (RelayAction.CLOSE_DIRECT, RelayState.CONNECTED)])
def test_relay_commands_are_acknowledged_and_run_status_word_3_shows_them(meters: dict, action: RelayAction,
                                                                          state: RelayState) -> None:
    meter = meters["electricity"]
    meter.operate_relay(RelayAction.TRIP, AT)  # start tripped, so both commands change something visible
    if action is RelayAction.TRIP:
        meter.operate_relay(RelayAction.CLOSE_DIRECT, AT)
    until = WallClock.of((AT + timedelta(minutes=30)).astimezone(TZ))
    reply, ack = ask(meters, dlt645_relay(meter.bus_address, action, valid_until=until, profile=meter.profile))

    assert reply.kind is ReplyKind.RELAY and ack.control == 0x9C and ack.payload_hex == ""
    status_reply, status = ask(meters, dlt645_read(meter.bus_address, "04000503"))
    assert status.status.relay is state is meter.relay is status_reply.relay


def test_close_allowed_reads_back_as_close_allowed(meters: dict) -> None:
    meter = meters["electricity"]
    meter.operate_relay(RelayAction.TRIP, AT)
    ask(meters, dlt645_relay(meter.bus_address, RelayAction.CLOSE_ALLOWED, valid_until=None, profile=meter.profile))
    _, status = ask(meters, dlt645_read(meter.bus_address, "04000503"))

    assert status.status.relay is RelayState.CLOSE_ALLOWED


def test_relay_refusals_carry_err_bits(meters: dict) -> None:
    meter = meters["electricity"]
    wrong = load_profile("dlt645-single-phase").model_copy(deep=True)
    wrong = wrong.model_copy(update={"dlt645": wrong.dlt645.model_copy(update={
        "relay": wrong.dlt645.relay.model_copy(update={"password": "123456"})})})
    _, bad_password = ask(meters, dlt645_relay(meter.bus_address, RelayAction.TRIP, valid_until=None, profile=wrong))
    expired = WallClock.of((AT - timedelta(minutes=1)).astimezone(TZ))
    _, too_late = ask(meters, dlt645_relay(meter.bus_address, RelayAction.TRIP, valid_until=expired))

    assert (bad_password.control, bad_password.error_code) == (0xDC, 0x04)
    assert (too_late.control, too_late.error_code) == (0xDC, 0x01)
    assert meter.relay is RelayState.CONNECTED


def test_an_unknown_data_identifier_gets_no_requested_data(meters: dict) -> None:
    reply, frame = ask(meters, dlt645_read(meters["electricity"].bus_address, "00020000"))

    assert reply.kind is ReplyKind.ABNORMAL and (frame.control, frame.error_code) == (0xD1, 0x02)


def test_run_status_word_1_shows_the_clock_battery_and_date_and_time_read_the_meter_clock(meters: dict) -> None:
    meter = meters["electricity"]
    word1_reply, word1 = ask(meters, dlt645_read(meter.bus_address, "04000501"))
    assert word1_reply.battery_low is True and word1_reply.relay is None
    _, date = ask(meters, dlt645_read(meter.bus_address, "04000101"))
    _, time = ask(meters, dlt645_read(meter.bus_address, "04000102"))

    assert word1.status.flag("clock_battery_low") is True and word1.status.battery_low is True
    assert dict(date.details)["meter_date"] == "2026-11-21" and dict(date.details)["weekday"] == "6"
    assert dict(time.details)["meter_time"] == "08:30:12"


def test_silence_for_other_addresses_garbage_and_broadcasts_which_set_every_dlt645_clock(meters: dict) -> None:
    bus = MeterBus(list(meters.values()))
    wall = WallClock(2026, 11, 21, 8, 0, 0)

    assert bus.answer(cjt188_read("02019999999999"), AT) is None
    assert bus.answer(b"\xfe\xfe\x68\x10\x01", AT) is None
    assert bus.answer(dlt645_broadcast_time(wall), AT) is None
    assert meters["electricity"].clock(AT) == wall
    assert meters["water"].clock(AT) != wall  # CJ/T 188 meters ignore DL/T 645 broadcasts


def test_a_reply_echo_on_the_bus_is_not_answered(meters: dict) -> None:
    bus = MeterBus(list(meters.values()))
    reply = bus.answer(cjt188_read(meters["water"].bus_address), AT)

    assert reply is not None and bus.answer(reply.frame, AT) is None
