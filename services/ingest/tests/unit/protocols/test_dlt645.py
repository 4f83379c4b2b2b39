"""DL/T 645-2007: +33H data, DI table with resolution, sign and unit, run-status relay bits, relay and time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from amiflow_schemas.events.commands import RelayAction
from amiflow_schemas.events.devices import FrameProtocol, RejectionReason
from amiflow_schemas.primitives import RelayState
from dlt645.protocol.protocol import DLT645Protocol
from ingest.core.protocols import FrameError, WallClock, decode_frame
from ingest.core.protocols.dlt645_encode import dlt645_frame, relay_request
from ingest.profiles import load_profile

METER = bytes.fromhex("129078563412")  # printed 123456789012


def _reply(di: str, values: str, control: int = 0x91) -> bytes:
    return dlt645_frame(METER, control, bytes.fromhex(di)[::-1] + bytes.fromhex(values))


def test_forward_active_block_gives_total_and_four_tariff_registers() -> None:
    frame = decode_frame(_reply("0001FF00", "56341200" "11110000" "22220000" "33330000" "44440000"))
    assert [(m.register, m.value) for m in frame.values] == [
        ("total", Decimal("1234.56")), ("T1", Decimal("11.11")), ("T2", Decimal("22.22")),
        ("T3", Decimal("33.33")), ("T4", Decimal("44.44"))]
    assert {m.unit for m in frame.values} == {"kWh"}


def test_combined_energy_is_signed_and_a_settlement_day_value_is_not_a_register() -> None:
    combined = decode_frame(_reply("00000000", "34120080"))
    history = decode_frame(_reply("00010001", "00010000"))
    assert combined.values[0].value == Decimal("-12.34") and combined.values[0].register == "combined"
    assert history.values[0].name == "forward_active_total_settlement_1" and history.values[0].register is None


@pytest.mark.parametrize(("di", "wire", "name", "value", "unit"), [
    ("0201FF00", "2023" "1523" "9923", "voltage_c", Decimal("239.9"), "V"),
    ("02020200", "991480", "current_b", Decimal("-1.499"), "A"),  # sign bit in the highest byte
    ("0203FF00", "123400" "000080" "010000" "345612", "active_power_c", Decimal("12.5634"), "kW"),
    ("02040000", "500080", "reactive_power", Decimal("-0.0050"), "kvar"),
    ("02060000", "9989", "power_factor", Decimal("-0.999"), ""),
    ("02800002", "0050", "frequency", Decimal("50.00"), "Hz"),
])
def test_instantaneous_values_use_the_spec_resolution_sign_and_unit(
    di: str, wire: str, name: str, value: Decimal, unit: str
) -> None:
    measurement = decode_frame(_reply(di, wire)).value(name)
    assert measurement is not None and (measurement.value, measurement.unit) == (value, unit)


def test_all_ff_means_not_supported_and_gives_no_value() -> None:
    frame = decode_frame(_reply("00010000", "FFFFFFFF"))
    assert frame.values[0].value is None


@pytest.mark.parametrize(("word3", "relay"), [
    ("0000", RelayState.CONNECTED),
    ("5000", RelayState.DISCONNECTED),  # bit 4 open, bit 6 trip command
    ("1000", RelayState.CLOSE_ALLOWED),  # open, but the command is already "close": press the button
])
def test_run_status_word_3_gives_the_relay_state(word3: str, relay: RelayState) -> None:
    frame = decode_frame(_reply("04000503", word3))
    assert frame.status is not None and frame.status.relay is relay


def test_run_status_block_reads_battery_from_word_1_and_relay_from_word_3() -> None:
    frame = decode_frame(_reply("040005FF", "0400" "0000" "1000" + "0000" * 4))
    assert frame.status is not None
    assert (frame.status.battery_low, frame.status.relay) == (True, RelayState.CLOSE_ALLOWED)
    assert frame.status.flag("clock_battery_low") is True


def test_date_and_time_parameters_are_read_in_wire_order() -> None:
    date = decode_frame(_reply("04000101", "03010726"))  # WW DD MM YY
    time = decode_frame(_reply("04000102", "050403"))  # ss mm hh
    assert dict(date.details)["meter_date"] == "2026-07-01" and dict(time.details)["meter_time"] == "03:04:05"


def test_abnormal_reply_lists_every_error_bit_set() -> None:
    frame = decode_frame(dlt645_frame(METER, 0xDC, bytes([0b0000_0101])))
    assert frame.is_error and frame.function == "relay control"
    assert frame.error == "other error; password wrong or unauthorised"


def test_follow_up_reply_strips_the_sequence_byte() -> None:
    frame = decode_frame(_reply("00010000", "00010000" "02", control=0x92))
    assert frame.values[0].value == Decimal("1.00") and dict(frame.details)["sequence"] == "2"


def test_unknown_di_in_a_reply_is_refused_but_a_read_request_for_it_decodes() -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(_reply("028022FF", "0000"))
    assert caught.value.reason is RejectionReason.UNSUPPORTED_DATA_ID and "028022FF" in str(caught.value)
    assert decode_frame(dlt645_frame(METER, 0x11, bytes.fromhex("FF228002"))).data_id == "028022FF"


def test_a_value_too_short_for_its_di_is_truncated_and_non_bcd_is_invalid() -> None:
    with pytest.raises(FrameError) as short:
        decode_frame(_reply("00010000", "5634"))
    with pytest.raises(FrameError) as hexed:
        decode_frame(_reply("00010000", "5A341200"))
    assert short.value.reason is RejectionReason.TRUNCATED and hexed.value.reason is RejectionReason.INVALID_VALUE


def test_1997_read_with_the_2007_control_code_is_still_told_apart_by_its_2_byte_di() -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(dlt645_frame(METER, 0x11, bytes.fromhex("1090")))  # §5 item 13 (peace0phmind)
    assert caught.value.protocol is FrameProtocol.DLT645_1997


def test_relay_request_carries_profile_password_operator_and_valid_until() -> None:
    raw = relay_request("201905241006", RelayAction.CLOSE_ALLOWED, valid_until=WallClock(2026, 7, 1, 8, 30, 0),
                        profile=load_profile("dlt645-single-phase"))
    command = decode_frame(raw).relay_command
    assert command is not None
    assert (command.code, command.action, command.password_level) == (0x1B, RelayAction.CLOSE_ALLOWED, 0x02)
    assert command.valid_until == WallClock(2026, 7, 1, 8, 30, 0)


def test_relay_trip_with_no_expiry_reproduces_the_public_vector() -> None:
    raw = relay_request("201905241006", RelayAction.TRIP, valid_until=None, profile=load_profile("dlt645-single-phase"))
    assert raw.removeprefix(b"\xfe" * 4).hex(" ").upper() == (
        "68 06 10 24 05 19 20 68 1C 10 35 33 33 33 33 33 33 33 4D 33 33 33 33 33 33 33 C0 16")


def test_decoder_agrees_with_the_dlt645_package_on_every_dlt645_vector(dlt645_vector: dict[str, Any]) -> None:
    """Cross-check (tests only): dlt645 3.2.0 finds the same frames, addresses, control codes and data."""
    vector = dlt645_vector
    raw = bytes.fromhex(vector["hex"])
    _, theirs = DLT645Protocol.deserialize_with_remaining(raw)
    if not vector["checksum_ok"]:
        assert theirs is None
        with pytest.raises(FrameError):
            decode_frame(raw)
        return
    assert theirs is not None
    if vector["protocol"] == "dlt645-1997":
        with pytest.raises(FrameError):
            decode_frame(raw)
        return
    ours = decode_frame(raw)
    assert bytes(theirs.addr)[::-1].hex().upper() == ours.address
    assert theirs.ctrl_code == ours.control
    assert bytes(theirs.data).hex() == ours.payload_hex
