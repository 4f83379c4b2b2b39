"""CJ/T 188: 901F layouts for water, gas and heat, units, ST bits, writes, abnormal replies, vendor quirks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from amiflow_schemas.events.commands import ValveAction
from amiflow_schemas.events.devices import DeviceAlarmFlag, FrameProtocol, RejectionReason
from amiflow_schemas.primitives import Utility, ValveState
from ingest.core.protocols import DiOrder, Direction, FrameError, WallClock, decode_frame
from ingest.core.protocols.cjt188_encode import cjt188_frame, valve_request, write_time_request
from ingest.core.protocols.profile import parse_profile
from ingest.profiles import load_profile

WATER_ADDRESS = bytes.fromhex("88052710152000")  # printed 00201510270588
CLOCK = bytes.fromhex("06201709011720")  # 2017-01-09 17:20:06


def _reply(meter_type: int, payload: bytes, *, di: bytes = b"\x90\x1f", control: int = 0x81) -> bytes:
    return cjt188_frame(meter_type, WATER_ADDRESS, control, di + b"\x01" + payload)


def _water(current: str, unit: int, st: str = "0000") -> bytes:
    return bytes.fromhex(current) + bytes([unit]) + bytes.fromhex("00000000") + b"\x2c" + CLOCK + bytes.fromhex(st)


def test_water_reply_in_litres_is_scaled_to_cubic_metres_keeping_the_raw_bcd() -> None:
    frame = decode_frame(_reply(0x10, _water("34120000", 0x29)))  # 12.34 L
    current = frame.value("current_cumulative_flow")
    assert current is not None
    assert (current.value, current.unit, current.unit_code, current.raw_hex) == (
        Decimal("0.01234"), "m3", 0x29, "3412000029")


def test_gas_meter_type_decodes_the_water_gas_layout_as_gas() -> None:
    frame = decode_frame(_reply(0x30, _water("00501200", 0x2C)))
    assert frame.utility is Utility.GAS
    total = frame.value("current_cumulative_flow")
    assert total is not None and total.value == Decimal("1250.00") and total.register == "total"


def test_heat_reply_decodes_energy_power_flow_volume_temperatures_and_hours() -> None:
    payload = (bytes.fromhex("00100000") + b"\x05" + bytes.fromhex("50250000") + b"\x11"  # 10.00 kWh, 25.50 GJ
               + bytes.fromhex("25010000") + b"\x17" + bytes.fromhex("34120000") + b"\x35"  # 1.25 kW, 0.1234 m3/h
               + bytes.fromhex("00450100") + b"\x2c"  # 145.00 m3
               + bytes.fromhex("506500") + bytes.fromhex("004500") + bytes.fromhex("123400")  # 65.50, 45.00 °C, 3412 h
               + CLOCK + bytes.fromhex("0400"))
    frame = decode_frame(_reply(0x20, payload))
    values = {m.name: (m.value, m.unit, m.register) for m in frame.values}
    assert values == {
        "settlement_heat": (Decimal("10.00"), "kWh", None),
        "current_heat": (Decimal("25.50"), "GJ", "total"),
        "heat_power": (Decimal("1.25"), "kW", None),
        "flow_rate": (Decimal("0.1234"), "m3/h", None),
        "cumulative_flow": (Decimal("145.00"), "m3", "volume"),
        "supply_temperature": (Decimal("65.50"), "°C", None),
        "return_temperature": (Decimal("45.00"), "°C", None),
        "working_hours": (Decimal("3412"), "h", None),
    }
    assert frame.meter_clock == WallClock(2017, 1, 9, 17, 20, 6)
    assert frame.status is not None and frame.status.battery_low is True and frame.utility is Utility.HEAT


@pytest.mark.parametrize(("st", "valve"), [("00", ValveState.OPEN), ("01", ValveState.CLOSED),
                                           ("03", ValveState.ABNORMAL), ("02", None)])
def test_st_bits_d1_d0_give_the_valve_state_and_10_is_undefined(st: str, valve: ValveState | None) -> None:
    frame = decode_frame(_reply(0x10, _water("00000000", 0x2C, st + "00")))
    assert frame.status is not None and frame.status.valve is valve
    assert frame.status.flag("valve_bits_undefined") is (valve is None)


def test_high_bits_st_layout_reads_xijunzhou_masks_for_closed_and_battery() -> None:
    profile = parse_profile({"name": "high-bits-meter", "description": "xijunzhou ST", "protocol": "cjt188",
                             "utility": "water", "cjt188": {"meter_type": 0x10, "st_layout": "high_bits"}})
    frame = decode_frame(_reply(0x10, _water("00000000", 0x2C, "6000")), profile)  # 0x40 closed | 0x20 battery
    assert frame.status is not None
    assert (frame.status.valve, frame.status.battery_low) == (ValveState.CLOSED, True)


def test_vendor_status_bits_of_a_profile_raise_platform_alarms() -> None:
    profile = load_profile("cjt188-water-nbiot-9097")
    frame = decode_frame(_reply(0x10, _water("00000000", 0x2C, "000A")), profile)  # byte 2: b1 + b3
    assert frame.status is not None
    assert frame.status.alarms == (DeviceAlarmFlag.EMPTY_PIPE, DeviceAlarmFlag.OVER_RANGE)
    assert frame.status.flag("reverse_flow") is False


def test_a_clock_with_impossible_date_is_none_and_flagged_invalid_but_all_ff_is_just_absent() -> None:
    bad = decode_frame(_reply(0x10, _water("00000000", 0x2C)[:10] + bytes.fromhex("00000031021520") + b"\0\0"))
    absent = decode_frame(_reply(0x10, _water("00000000", 0x2C)[:10] + b"\xff" * 7 + b"\0\0"))
    assert bad.meter_clock is None and bad.status is not None and DeviceAlarmFlag.CLOCK_INVALID in bad.status.alarms
    assert absent.meter_clock is None and absent.status is not None and absent.status.alarms == ()


def test_a_non_bcd_register_is_refused_rather_than_guessed() -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(_reply(0x10, _water("3A120000", 0x2C)))
    assert caught.value.reason is RejectionReason.INVALID_VALUE and "not BCD" in str(caught.value)
    assert caught.value.address == "00201510270588" and caught.value.protocol is FrameProtocol.CJT188


def test_a_short_901f_payload_is_refused_as_truncated() -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(_reply(0x10, _water("00000000", 0x2C)[:12]))
    assert caught.value.reason is RejectionReason.TRUNCATED


def test_abnormal_reply_without_di_reports_the_refusal_and_its_st() -> None:
    frame = decode_frame(cjt188_frame(0x10, WATER_ADDRESS, 0xC4, bytes.fromhex("070100")))
    assert frame.is_error and frame.direction is Direction.REPLY and frame.ser == 7
    assert frame.error is not None and "write data" in frame.error and "01 00" in frame.error
    assert frame.status is not None and frame.status.valve is ValveState.CLOSED


def test_history_di_d122_is_the_settlement_flow_three_months_ago() -> None:
    frame = decode_frame(_reply(0x10, bytes.fromhex("00250000") + b"\x2c", di=b"\xd1\x22"))
    assert frame.data_id == "D122" and dict(frame.details)["months_ago"] == "3"
    (history,) = frame.values
    assert history.value == Decimal("25.00") and history.register is None


def test_read_address_reply_with_the_address_in_the_data_is_accepted() -> None:
    frame = decode_frame(_reply(0x10, WATER_ADDRESS, di=b"\x81\x0a", control=0x83))
    assert dict(frame.details)["address_read"] == "00201510270588"


def test_valve_reply_reports_the_valve_state_after_the_command() -> None:
    frame = decode_frame(_reply(0x10, bytes.fromhex("0000"), di=b"\xa0\x17", control=0x84))
    assert frame.status is not None and frame.status.valve is ValveState.OPEN


def test_an_unknown_di_in_a_reply_is_refused_naming_its_bytes() -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(_reply(0x10, b"\x00" * 4, di=b"\x12\x34"))
    assert caught.value.reason is RejectionReason.UNSUPPORTED_DATA_ID and "12 34" in str(caught.value)


def test_an_echoed_request_with_an_unknown_di_still_decodes() -> None:
    frame = decode_frame(cjt188_frame(0x10, WATER_ADDRESS, 0x01, bytes.fromhex("123400")))
    assert frame.direction is Direction.REQUEST and frame.data_id_order is DiOrder.UNKNOWN


def test_vendor_9097_push_decodes_with_its_profile_layout() -> None:
    # tanmoyAtb/flow-meter-server-tcp test/fixtures.js REFERENCE_FRAME (vendor PDF section 3.1.1).
    raw = bytes.fromhex("".join((
        "68107545000013082181AC9097002B606620002B308001002B00000000",
        "0000000000350000000092270000000000461404260821200002FFB4001200",
        "0B8986111925301747443008648230479880500104FFFFFF00606620000000",
        "00000000000000000000000000000000000000000000000000000000000000",
        "000000000000000F6E07941D1011621B9F09EB060E079E0D35048759ED00",
        "000D6F07760B7D0A0017FB0F6515C20D0B16450D0B068614D2079500B3",
        "2CD8E616",
    )))
    frame = decode_frame(raw, load_profile("cjt188-water-nbiot-9097"))
    total = frame.value("current_cumulative_flow")
    assert total is not None and total.value == Decimal("206.660") and total.unit == "m3"  # 2B = L x100
    assert frame.meter_clock == WallClock(2021, 8, 26, 4, 14, 46)
    with pytest.raises(FrameError, match=r"9097|90 97"):
        decode_frame(raw)  # without the profile the vendor DI is unknown


def test_cat1_look_alike_with_97_in_the_length_byte_is_not_taken_for_cjt188() -> None:
    # tanmoyAtb fixtures CAT1_FRAMES_HEX[0]: byte 10 is a fixed 97H, not L (protocols.md §5 item 12).
    raw = bytes.fromhex(
        "6810040022082610000397000000024603C22C002703060300867512079825846D898604221525700097820E1EA2F71700"
        "100002C005A0FFFFFF0000000003E8000000000000000023092306024600000000000000007416")
    with pytest.raises(FrameError) as caught:
        decode_frame(raw)
    assert caught.value.reason is RejectionReason.TRUNCATED


def test_valve_request_uses_the_profiles_vendor_control_code_and_type_byte() -> None:
    fox = valve_request("00000805000001", ValveAction.CLOSE, profile=load_profile("cjt188-water-foxedge"))
    assert fox.hex(" ").upper() == "FE FE FE 68 10 01 00 00 05 08 00 00 2A 04 A0 17 00 99 04 16"  # vector 6
    nbiot = decode_frame(valve_request("21081300004575", ValveAction.OPEN,
                                       profile=load_profile("cjt188-water-nbiot-9097")))
    assert nbiot.meter_type == 0x20  # §5 item 14: T=20 in this vendor's valve frames


def test_write_time_request_carries_the_clock_in_901f_layout() -> None:
    frame = decode_frame(write_time_request("1", WallClock(2026, 7, 1, 8, 0, 5)))
    assert frame.data_id == "A015" and frame.set_time == WallClock(2026, 7, 1, 8, 0, 5)
    assert frame.payload_hex.endswith("05000801072620")


def test_a_profile_without_a_valve_refuses_to_build_a_valve_request() -> None:
    with pytest.raises(ValueError, match="no valve"):
        valve_request("1", ValveAction.OPEN, profile=load_profile("cjt188-heat"))
