"""Fuzzing what a DTU or concentrator sends before meter data: registration packets and Q/GDW 376.1 frames.

The gateway catches exactly LoginIncomplete / LoginRefused and Gw376Incomplete / NotGw376; anything
else a parser raised would end the DTU's session. So: whatever the bytes, a result that makes sense
(it consumed no more than it was given) or one of those errors — nothing else, and no hang.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from ingest.core.dtu_login import MAX_ASCII_ID, LoginFormat, LoginIncomplete, LoginRefused, parse_login
from ingest.core.gw376 import HEADER, Gw376Incomplete, NotGw376, looks_like_gw376, master_confirm, parse_gw376

EXAMPLES = int(os.environ.get("AMIFLOW_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])

# dtu-connections.md §5 captures: a concentrator's login and heartbeat.
LOGIN = bytes.fromhex("683200320068C900023412000271000001008516")
HEARTBEAT = bytes.fromhex("683200320068C900023412000271000004008816")
# §1: the registration packets of each format.
DDP = b"\x7b\x01\x00\x16" + b"13912345678" + bytes([10, 0, 0, 1]) + b"\x1f\x90" + b"\x7b"
INHAND = b"\xaa\x01" + b"13912345678" + b"\x0d"
ASCII = b"860123456789012\r\n"


def _gw376(user: bytes, *, length: int | None = None, checksum: bool = True) -> bytes:
    """A 376.1 frame around ``user`` data; ``length`` lies about its size, ``checksum`` fixes the CS up."""
    declared = (((len(user) if length is None else length) << 2) | 0b10).to_bytes(2, "little")
    cs = sum(user) % 256 if checksum else (sum(user) + 1) % 256
    return b"\x68" + declared + declared + b"\x68" + user + bytes([cs, 0x16])


@st.composite
def _mutated_376(draw: st.DrawFn) -> bytes:
    user = bytearray(draw(st.sampled_from([LOGIN, HEARTBEAT]))[HEADER:-2])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(user) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        if kind == "flip" and user:
            user[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del user[at : at + draw(st.integers(1, 8))]
        elif kind == "insert":
            user[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "repeat" and user:
            user[at:at] = bytes(user[at : at + 4]) * draw(st.integers(2, 1000))
    frame = _gw376(bytes(user), length=draw(st.none() | st.integers(0, 0x3FFF)), checksum=draw(st.integers(0, 9)) > 0)
    return frame[: draw(st.integers(0, len(frame)))] if draw(st.integers(0, 4)) == 0 else frame


def _parses_or_refuses_376(buffer: bytes) -> None:
    try:
        frame, used = parse_gw376(buffer)
    except (Gw376Incomplete, NotGw376) as exc:
        event(type(exc).__name__)
        return
    event("parsed")
    assert looks_like_gw376(buffer)
    assert 0 < used <= len(buffer) and frame.raw == buffer[:used]
    confirm, _ = parse_gw376(master_confirm(frame))  # what we answer is a 376.1 frame to the same address
    assert confirm.area == frame.area and confirm.terminal == frame.terminal


@FUZZ
@given(_mutated_376(), st.binary(max_size=8))
@example(_gw376(b"\x00" * 11), b"")  # user data one byte short of C, A, AFN, SEQ, DA, DT
@example(_gw376(b"\xc9" + b"\x00" * 11, length=0x3FFF), b"")  # a length field claiming 16 KiB
def test_mutated_376_frames_parse_or_raise_only_the_gateways_errors(frame: bytes, tail: bytes) -> None:
    _parses_or_refuses_376(frame + tail)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_parse_as_376_or_raise_only_the_gateways_errors(buffer: bytes) -> None:
    _parses_or_refuses_376(buffer)


@st.composite
def _mutated_login(draw: st.DrawFn) -> bytes:
    packet = bytearray(draw(st.sampled_from([DDP, INHAND, ASCII, LOGIN])))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(packet) - 1)) if packet else 0
        if draw(st.booleans()) and packet:
            packet[at] = draw(st.integers(0, 255))
        else:
            del packet[at : at + draw(st.integers(1, 6))]
    return bytes(packet) + draw(st.binary(max_size=60))


@FUZZ
@given(_mutated_login() | st.binary(max_size=120), st.sampled_from(list(LoginFormat)),
       st.none() | st.integers(1, MAX_ASCII_ID))
@example(b"\xff" * 15, LoginFormat.ASCII_ID, 15)  # an IMEI-length id that is not ASCII
@example("设备-01\r\n".encode(), LoginFormat.ASCII_ID, None)  # UTF-8 before the line end
def test_registration_packets_parse_or_raise_only_the_gateways_errors(
    buffer: bytes, fmt: LoginFormat, ascii_length: int | None
) -> None:
    try:
        login = parse_login(fmt, buffer, ascii_length)
    except (LoginIncomplete, LoginRefused) as exc:
        event(type(exc).__name__)
        return
    event("parsed")
    assert 0 < login.consumed <= len(buffer)
    assert login.registration_id and login.registration_id.isascii() and login.registration_id.isprintable()
