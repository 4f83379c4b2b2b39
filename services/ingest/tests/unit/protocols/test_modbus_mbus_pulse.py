"""Modbus register maps, M-Bus long frames and pulse counters give exact Decimals in platform units."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from amiflow_schemas.events.devices import FrameProtocol, RejectionReason
from amiflow_schemas.primitives import Unit, Utility
from ingest.core.protocols import (
    Direction,
    FrameError,
    decode_frame,
    modbus_read_registers,
    pulse_register,
    pulse_total,
    register_values,
)
from ingest.core.protocols.modbus import crc16
from ingest.profiles import load_profile

SDM120 = load_profile("modbus-eastron-sdm120")
TEMPLATE = load_profile("modbus-energy-uint32-template")
MBUS_VECTOR = bytes.fromhex("681F1F680802727856341224400107550000000313153100DA023B13018B60043718021816")


def _rtu_reply(unit: int, function: int, words: bytes) -> bytes:
    body = bytes([unit, function, len(words)]) + words
    return body + crc16(body)


def test_read_request_builds_the_spec_example_and_decodes_as_a_request() -> None:
    raw = modbus_read_registers(0x11, 3, 0x006B, 3)
    assert raw.hex(" ").upper() == "11 03 00 6B 00 03 76 87"
    frame = decode_frame(raw)
    assert frame.direction is Direction.REQUEST and dict(frame.details)["first_register"] == "0x006B"


def test_float32_energy_register_is_the_shortest_exact_decimal_of_the_float() -> None:
    request = modbus_read_registers(1, 4, 0x0048, 4)
    reply = _rtu_reply(1, 4, struct.pack(">f", 1234.56) + struct.pack(">f", 7.5))
    frame = decode_frame(reply, SDM120, request=request)
    assert [(m.name, m.value, m.unit) for m in frame.values] == [
        ("import_active_energy", Decimal("1234.56"), "kWh"), ("export_active_energy", Decimal("7.5"), "kWh")]
    assert register_values(frame) == [("total", Decimal("1234.56"), Unit.KWH), ("reverse", Decimal("7.5"), Unit.KWH)]


def test_a_reply_several_profile_reads_could_answer_is_left_unmapped_with_a_note() -> None:
    frame = decode_frame(_rtu_reply(1, 4, struct.pack(">f", 230.1)), SDM120)  # V, A, W and PF are 2 registers each
    assert frame.values == () and "pass the request" in frame.notes[0]
    assert dict(frame.details)["registers"] == "4366 199A"


def test_uint32_low_word_first_with_scale_over_modbus_tcp_mapped_by_its_only_read() -> None:
    words = bytes.fromhex("E240" "0001") + bytes.fromhex("0064" "0000") + bytes.fromhex("08FD")
    pdu = bytes([3, len(words)]) + words
    reply = (7).to_bytes(2, "big") + b"\0\0" + (len(pdu) + 1).to_bytes(2, "big") + b"\x01" + pdu
    frame = decode_frame(reply, TEMPLATE)  # the template reads 0x0000 x 5 and nothing else
    assert frame.protocol is FrameProtocol.MODBUS_TCP
    assert [(m.name, m.value) for m in frame.values] == [
        ("forward_active_energy", Decimal("1234.56")),  # 0x0001E240 = 123456 x 0.01
        ("reverse_active_energy", Decimal("1.00")), ("voltage", Decimal("230.1"))]


def test_exception_reply_is_an_error_with_its_meaning() -> None:
    body = bytes([1, 0x84, 0x02])
    frame = decode_frame(body + crc16(body))
    assert frame.is_error and frame.error == "illegal data address" and frame.error_code == 2


def test_a_request_that_is_not_a_valid_rtu_frame_is_refused() -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(_rtu_reply(1, 4, b"\0\0"), SDM120, request=b"\x01\x04\x00")
    assert caught.value.reason is RejectionReason.INVALID_REQUEST


def test_mbus_long_frame_gives_exact_volume_and_energy_in_platform_units() -> None:
    frame = decode_frame(MBUS_VECTOR)
    volume, peak, energy = frame.values
    assert (volume.value, volume.unit, volume.register) == (Decimal("12.565"), "m3", "total")  # a water meter
    assert (energy.value, energy.unit, energy.register) == (Decimal("218.370"), "kWh", None)  # tariff 2: history
    assert peak.register is None and frame.utility is Utility.WATER


def test_mbus_heat_profile_makes_volume_the_volume_register() -> None:
    frame = decode_frame(MBUS_VECTOR, load_profile("mbus-heat-meter"))
    assert frame.values[0].register == "volume" and frame.utility is Utility.HEAT


def test_mbus_frame_with_a_cut_off_record_says_so_instead_of_inventing_a_value() -> None:
    body = bytes.fromhex("0802727856341224400107550000000313")  # the volume record has no data bytes
    decoded = decode_frame(bytes([0x68, len(body), len(body), 0x68]) + body + bytes([sum(body) & 0xFF, 0x16]))
    assert decoded.values == () and decoded.notes == ("M-Bus decode partial: Insufficient data",)


def test_pulse_count_times_weight_is_exact() -> None:
    assert pulse_total(1234, Decimal("0.01")) == Decimal("12.34")
    assert pulse_register(7, load_profile("pulse-water-10l").pulse) == ("total", Decimal("0.07"), Unit.M3)  # type: ignore[arg-type]


@pytest.mark.parametrize(("count", "weight"), [(-1, Decimal("0.01")), (True, Decimal(1)), (3, Decimal(0)),
                                               (3, Decimal("NaN"))])
def test_pulse_refuses_negative_counts_and_non_positive_weights(count: int, weight: Decimal) -> None:
    with pytest.raises(ValueError):
        pulse_total(count, weight)
