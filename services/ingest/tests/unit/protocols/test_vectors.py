"""Every public frame in protocol-vectors.json decodes to its documented meaning, or is refused for its fault."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from amiflow_schemas.events.devices import FrameProtocol, RejectionReason
from ingest.core.protocols import DecodedFrame, DiOrder, Direction, FrameError, decode_frame


def _int(text: str) -> int:
    return int(text, 16)


def _decimal(number: float | None) -> Decimal | None:
    return None if number is None else Decimal(str(number))


def test_every_good_vector_decodes_and_every_bad_one_is_refused_for_its_checksum(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    expected = vector["decoded"]
    if vector["checksum_ok"] and vector["protocol"] != "dlt645-1997":
        frame = decode_frame(raw)
        _check_common(frame, vector)
        return
    with pytest.raises(FrameError) as caught:
        decode_frame(raw)
    if vector["protocol"] == "dlt645-1997":
        assert caught.value.protocol is FrameProtocol.DLT645_1997
        assert "1997" in str(caught.value)
        assert expected["di_1997"] in str(caught.value)
    else:
        assert caught.value.reason is RejectionReason.CHECKSUM_MISMATCH
        assert f"expected {_int(expected['checksum_calc']):02X}, got {_int(expected['checksum_wire']):02X}" in str(
            caught.value)


def _check_common(frame: DecodedFrame, vector: dict[str, Any]) -> None:
    expected = vector["decoded"]
    if vector["protocol"] == "cjt188":
        _check_cjt188(frame, expected)
    elif vector["protocol"] == "dlt645":
        _check_dlt645(frame, expected)
    elif vector["protocol"] == "modbus-rtu":
        assert frame.protocol is FrameProtocol.MODBUS_RTU
        assert frame.address == str(expected["slave"])
        assert frame.control == _int(expected["function"])
        assert frame.checksum_hex == expected["crc_wire"].replace(" ", "").lower()
    else:
        assert frame.protocol is FrameProtocol.MBUS
        assert frame.address == expected["id"]
        assert frame.control == _int(expected["C"])
        assert dict(frame.details)["primary_address"] == str(expected["A"])
        assert dict(frame.details)["ci"] == expected["CI"][2:]


def _check_header(frame: DecodedFrame, expected: dict[str, Any]) -> None:
    assert frame.address == expected["address"]
    assert frame.control == _int(expected["control"])
    assert frame.direction is (Direction.REPLY if expected["direction"] == "slave->master" else Direction.REQUEST)
    assert frame.is_error is expected["abnormal"]
    assert frame.follow_up is expected["follow_up"]
    assert frame.preamble_fe == expected["preamble_fe"]
    assert frame.checksum_hex == expected["checksum_wire"][2:].lower()


def _check_cjt188(frame: DecodedFrame, expected: dict[str, Any]) -> None:
    _check_header(frame, expected)
    assert frame.protocol is FrameProtocol.CJT188
    assert frame.meter_type == _int(expected["meter_type"])
    assert frame.data_id == expected["di"]
    assert frame.ser == _int(expected["ser"])
    low_first = expected["di_byte_order"].startswith("low byte first")
    assert frame.data_id_order is (DiOrder.LOW_FIRST if low_first else DiOrder.HIGH_FIRST)
    if "current_flow" in expected:
        current, settlement = frame.value("current_cumulative_flow"), frame.value("settlement_cumulative_flow")
        assert current is not None and settlement is not None
        assert current.value == _decimal(expected["current_flow"])
        assert settlement.value == _decimal(expected["settlement_flow"])
        assert current.unit == expected["current_flow_unit"] and settlement.unit == expected["settlement_flow_unit"]
        assert current.register == "total"
        clock = frame.meter_clock
        assert (clock.isoformat() if clock else None) == expected["clock"]
    if "valve" in expected:
        assert frame.status is not None
        assert frame.status.raw_hex == expected["st_raw"].replace(" ", "").lower()
        assert frame.status.valve is not None and frame.status.valve.value == expected["valve"]
        assert frame.status.battery_low is expected["battery_low"]
    if "valve_cmd" in expected:
        assert frame.valve_command is not None
        assert frame.valve_command.code == _int(expected["valve_cmd"])
        assert frame.valve_command.action is not None
        assert frame.valve_command.action.value == expected["valve_cmd_meaning"]


def _check_dlt645(frame: DecodedFrame, expected: dict[str, Any]) -> None:
    _check_header(frame, expected)
    assert frame.protocol is FrameProtocol.DLT645_2007
    assert frame.payload_hex == expected["data_minus_33"].replace(" ", "").lower()
    if "di" in expected:
        assert frame.data_id == expected["di"]
    if "value" in expected:
        (measurement,) = frame.values
        assert measurement.value == _decimal(expected["value"])
        assert measurement.unit == expected["unit"]
    if "err_bits" in expected:
        assert frame.error_code == _int(expected["err_byte"])
        assert frame.error is not None and frame.error.split("; ") == expected["err_bits"]
    if "new_address" in expected:
        assert dict(frame.details)["new_address"] == expected["new_address"]
    if "time" in expected:
        assert frame.set_time is not None and frame.set_time.isoformat() == expected["time"]
    if "n1" in expected:
        command = frame.relay_command
        assert command is not None
        assert command.code == _int(expected["n1"]) and command.password_level == _int(expected["pa"])
        assert command.password_hex == expected["password"].replace(" ", "")
        assert command.operator_hex == expected["operator"]
        assert command.valid_until_raw == expected["valid_until_raw_ssmmhhDDMMYY"].replace(" ", "")

