"""Q/GDW 376.1 concentrator login and heartbeat, against the captures in dtu-connections.md §5."""

from __future__ import annotations

import pytest
from ingest.core.gw376 import Gw376Incomplete, NotGw376, looks_like_gw376, master_confirm, parse_gw376

LOGIN = bytes.fromhex("683200320068C9000234120002710000010085" "16")
HEARTBEAT = bytes.fromhex("683200320068C9000234120002710000040088" "16")
MASTER_CONFIRM = bytes.fromhex("6832003200680B0002341200006100000100B5" "16")


def test_login_capture_names_the_concentrator_by_area_and_terminal_address() -> None:
    frame, used = parse_gw376(LOGIN + b"\x68")
    assert used == len(LOGIN)
    assert frame.is_login and not frame.is_heartbeat
    assert frame.registration_id == "0200-04660"


def test_the_confirm_we_send_is_byte_for_byte_the_captured_master_confirm() -> None:
    frame, _ = parse_gw376(LOGIN)
    assert master_confirm(frame) == MASTER_CONFIRM


def test_heartbeat_capture_is_a_heartbeat_and_is_confirmed_too() -> None:
    frame, _ = parse_gw376(HEARTBEAT)
    assert frame.is_heartbeat
    assert master_confirm(frame)[12:18] == bytes.fromhex("006100000100")


def test_a_partial_frame_asks_for_more_bytes() -> None:
    with pytest.raises(Gw376Incomplete):
        parse_gw376(LOGIN[:10])


def test_a_wrong_checksum_is_refused_with_the_frame_shown() -> None:
    broken = LOGIN[:-2] + bytes([LOGIN[-2] ^ 0xFF]) + LOGIN[-1:]
    with pytest.raises(NotGw376, match="checksum"):
        parse_gw376(broken)


def test_dlt645_and_ascii_logins_do_not_look_like_376() -> None:
    assert not looks_like_gw376(bytes.fromhex("68AAAAAAAAAAAA681300DF16"))
    assert not looks_like_gw376(b"hello-dtu\r\n")
