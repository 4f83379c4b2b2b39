"""What the gateway gets from a frame: registers in base units times the multiplier, and device status."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.devices import BatteryLevel, DeviceStatusReported, RejectionReason
from amiflow_schemas.primitives import RelayState, Unit, Utility, ValveState
from ingest.core.protocols import FrameError, decode_frame, device_status, meter_time, register_values
from ingest.core.protocols.cjt188_encode import cjt188_frame
from ingest.core.protocols.dlt645_encode import dlt645_frame
from ingest.profiles import load_profile

SHANGHAI = ZoneInfo("Asia/Shanghai")
WATER_REPLY = bytes.fromhex("68108805271015200081 16901F01 00123400 2C 00000000 2C 06201709011720 0500 2616"
                            .replace(" ", ""))


def _fix_checksum(frame: bytes) -> bytes:
    return frame[:-2] + bytes([sum(frame[:-2]) & 0xFF, 0x16])


def test_register_values_scale_by_the_multiplier_in_platform_units() -> None:
    block = dlt645_frame(bytes(6), 0x91, bytes.fromhex("00FF0100") + bytes.fromhex("00010000" "50000000"))
    assert register_values(decode_frame(block), Decimal(40)) == [
        ("total", Decimal("40.00"), Unit.KWH), ("T1", Decimal("20.00"), Unit.KWH)]


def test_water_total_is_the_only_register_and_settlement_is_history() -> None:
    frame = decode_frame(_fix_checksum(WATER_REPLY))
    assert register_values(frame) == [("total", Decimal("3412.00"), Unit.M3)]


def test_requests_and_abnormal_replies_carry_no_registers() -> None:
    request = decode_frame(dlt645_frame(bytes(6), 0x11, bytes.fromhex("00000100")))
    abnormal = decode_frame(dlt645_frame(bytes(6), 0xD1, b"\x02"))
    assert register_values(request) == [] and register_values(abnormal) == []


def test_a_register_in_an_unknown_unit_code_is_refused_not_passed_on_unscaled() -> None:
    frame = decode_frame(cjt188_frame(0x10, bytes(7), 0x81, bytes.fromhex("901F00" "00010000" "7F" + "00" * 14)))
    with pytest.raises(FrameError) as caught:
        register_values(frame)
    assert caught.value.reason is RejectionReason.INVALID_VALUE and "0x7F" in str(caught.value)


@pytest.mark.parametrize("multiplier", [Decimal(0), Decimal(-1), Decimal("Infinity")])
def test_the_multiplier_must_be_positive_and_finite(multiplier: Decimal) -> None:
    with pytest.raises(ValueError):
        register_values(decode_frame(_fix_checksum(WATER_REPLY)), multiplier)


def test_meter_clock_is_local_wall_time_made_aware_in_the_meters_zone() -> None:
    frame = decode_frame(_fix_checksum(WATER_REPLY))
    assert meter_time(frame, SHANGHAI) == datetime(2017, 1, 9, 17, 20, 6, tzinfo=SHANGHAI)


def test_device_status_builds_a_valid_device_status_reported_v2() -> None:
    frame = decode_frame(_fix_checksum(WATER_REPLY))  # ST 05 00: valve closed, battery low
    status = device_status(frame, SHANGHAI)
    assert status is not None
    event = DeviceStatusReported(meter_id="WM-1", gateway_id="DTU-1", **status)
    assert (event.valve, event.relay, event.utility) == (ValveState.CLOSED, None, Utility.WATER)
    assert event.battery is not None and event.battery.level is BatteryLevel.LOW
    assert event.reported_at == datetime(2017, 1, 9, 17, 20, 6, tzinfo=SHANGHAI)
    assert event.status_word_hex == "0500"


def test_a_meter_model_without_a_valve_reports_no_valve_state() -> None:
    status = device_status(decode_frame(_fix_checksum(WATER_REPLY)), SHANGHAI, load_profile("cjt188-heat"))
    assert status is not None and status["valve"] is None


def test_device_status_of_an_electricity_meter_carries_the_relay_and_no_clock() -> None:
    frame = decode_frame(dlt645_frame(bytes(6), 0x91, bytes.fromhex("03050004") + bytes.fromhex("5000")))
    status = device_status(frame, SHANGHAI)
    assert status is not None and status["relay"] is RelayState.DISCONNECTED and status["reported_at"] is None
    assert status["utility"] is Utility.ELECTRICITY


def test_frames_without_status_give_none() -> None:
    assert device_status(decode_frame(dlt645_frame(bytes(6), 0x91, bytes.fromhex("00000100") + bytes(4))),
                         SHANGHAI) is None
