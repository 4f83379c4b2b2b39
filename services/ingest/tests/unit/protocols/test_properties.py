"""Properties: every encoder's frame decodes back to what was asked; no input makes decode_frame misbehave."""

from __future__ import annotations

from datetime import datetime

from amiflow_schemas.events.commands import RelayAction, ValveAction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest.core.protocols import (
    Direction,
    FrameError,
    WallClock,
    cjt188_read,
    cjt188_read_address,
    cjt188_valve,
    cjt188_write_time,
    decode_frame,
    dlt645_broadcast_time,
    dlt645_read,
    dlt645_relay,
    modbus_read_registers,
)
from ingest.core.protocols.cjt188 import DATA_IDS, HISTORY_FIRST, HISTORY_LAST
from ingest.core.protocols.cjt188_encode import data_id_bytes
from ingest.core.protocols.dlt645 import RELAY_ACTIONS
from ingest.profiles import load_all, load_profile

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILES = load_all()
CJT188_VALVES = [p for p in PROFILES.values() if p.cjt188 is not None and p.cjt188.valve is not None]

addresses_188 = st.integers(0, 10**14 - 1).map(lambda n: f"{n:014d}")
addresses_645 = st.integers(0, 10**12 - 1).map(lambda n: f"{n:012d}")
clocks = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)).map(WallClock.of)
sers = st.integers(0, 255)


KNOWN_188 = sorted({*DATA_IDS, *range(HISTORY_FIRST, HISTORY_LAST + 1)})


@BOUNDED
@given(addresses_188, st.one_of(st.sampled_from(KNOWN_188), st.integers(0, 0xFFFF)), sers,
       st.sampled_from(["cjt188-water-2004", "cjt188-water-2018"]))
def test_cjt188_read_round_trips_address_di_order_and_ser(address: str, di: int, ser: int, name: str) -> None:
    profile = load_profile(name)
    assert profile.cjt188 is not None
    frame = decode_frame(cjt188_read(address, di, ser=ser, profile=profile))
    assert (frame.address, frame.ser, frame.direction) == (address, ser, Direction.REQUEST)
    if di in KNOWN_188:  # a known DI comes back with the order it was sent in
        assert (frame.data_id, frame.data_id_order) == (f"{di:04X}", profile.cjt188.di_order)
    else:  # an unknown one is at least carried unchanged (it may read as a known DI in the other order)
        assert frame.payload_hex[:4] == data_id_bytes(di, profile.cjt188.di_order).hex()


@BOUNDED
@given(addresses_188, st.sampled_from([ValveAction.OPEN, ValveAction.CLOSE]), sers,
       st.sampled_from(CJT188_VALVES))
def test_cjt188_valve_round_trips_the_action_under_every_valve_profile(
    address: str, action: ValveAction, ser: int, profile: object
) -> None:
    frame = decode_frame(cjt188_valve(address, action, ser=ser, profile=profile))  # type: ignore[arg-type]
    assert frame.data_id == "A017" and frame.valve_command is not None
    assert (frame.address, frame.valve_command.action, frame.ser) == (address, action, ser)


@BOUNDED
@given(addresses_188, clocks, sers)
def test_cjt188_write_time_round_trips_the_clock(address: str, clock: WallClock, ser: int) -> None:
    frame = decode_frame(cjt188_write_time(address, clock, ser=ser))
    assert (frame.address, frame.set_time, frame.data_id) == (address, clock, "A015")


@BOUNDED
@given(sers)
def test_cjt188_read_address_goes_to_the_wildcard(ser: int) -> None:
    frame = decode_frame(cjt188_read_address(ser=ser))
    assert (frame.address, frame.meter_type, frame.data_id, frame.ser) == ("A" * 14, 0xAA, "810A", ser)


@BOUNDED
@given(addresses_645, st.integers(0, 0xFFFFFFFF))
def test_dlt645_read_round_trips_address_and_di(address: str, di: int) -> None:
    frame = decode_frame(dlt645_read(address, f"{di:08X}"))
    assert (frame.address, frame.data_id, frame.control) == (address, f"{di:08X}", 0x11)


@BOUNDED
@given(addresses_645, st.sampled_from(sorted(RELAY_ACTIONS.values())), st.one_of(st.none(), clocks))
def test_dlt645_relay_round_trips_action_and_valid_until(
    address: str, action: RelayAction, until: WallClock | None
) -> None:
    frame = decode_frame(dlt645_relay(address, action, valid_until=until))
    assert frame.relay_command is not None
    assert (frame.address, frame.relay_command.action, frame.relay_command.valid_until) == (address, action, until)


@BOUNDED
@given(clocks)
def test_dlt645_broadcast_time_round_trips_the_time(clock: WallClock) -> None:
    frame = decode_frame(dlt645_broadcast_time(clock))
    assert (frame.address, frame.set_time) == ("999999999999", clock)


@BOUNDED
@given(st.integers(1, 247), st.sampled_from([3, 4]), st.integers(0, 0xFFFF), st.integers(1, 125), st.booleans())
def test_modbus_read_round_trips_unit_function_address_and_count(
    unit: int, function: int, address: int, count: int, tcp: bool
) -> None:
    frame = decode_frame(modbus_read_registers(unit, function, address, count, tcp=tcp))
    details = dict(frame.details)
    assert (frame.address, frame.control, details["first_register"], details["count"]) == (
        str(unit), function, f"0x{address:04X}", str(count))


def _only_frame_errors(raw: bytes, profile: object = None) -> None:
    try:
        decode_frame(raw, profile)  # type: ignore[arg-type]
    except FrameError as exc:
        assert not str(exc).startswith("internal decoder error"), str(exc)


@BOUNDED
@given(st.binary(max_size=300), st.sampled_from([None, *PROFILES.values()]))
def test_arbitrary_bytes_raise_nothing_but_frame_error(raw: bytes, profile: object) -> None:
    _only_frame_errors(raw, profile)


@BOUNDED
@given(st.sampled_from([0x10, 0x20, 0x30, 0xAA]), st.binary(min_size=7, max_size=7), st.integers(0, 255),
       st.binary(max_size=80))
def test_any_well_framed_cjt188_content_raises_nothing_but_frame_error(
    meter_type: int, address: bytes, control: int, data: bytes
) -> None:
    from ingest.core.protocols.cjt188_encode import cjt188_frame

    _only_frame_errors(cjt188_frame(meter_type, address, control, data))
    _only_frame_errors(cjt188_frame(meter_type, address, control, data), load_profile("cjt188-water-nbiot-9097"))


@BOUNDED
@given(st.binary(min_size=6, max_size=6), st.integers(0, 255), st.binary(max_size=80))
def test_any_well_framed_dlt645_content_raises_nothing_but_frame_error(
    address: bytes, control: int, data: bytes
) -> None:
    from ingest.core.protocols.dlt645_encode import dlt645_frame

    _only_frame_errors(dlt645_frame(address, control, data))


@BOUNDED
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=60))
def test_any_well_framed_mbus_content_raises_nothing_but_frame_error(control: int, primary: int, data: bytes) -> None:
    body = bytes([control, primary, 0x72]) + data
    _only_frame_errors(bytes([0x68, len(body), len(body), 0x68]) + body + bytes([sum(body) & 0xFF, 0x16]))
