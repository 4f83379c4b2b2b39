"""The codec CLI: decode prints JSON (exit 0) or the reason (exit 1); encode prints the frame hex."""

from __future__ import annotations

import json

import pytest
from ingest.tools.codec_cli import main


def test_decode_prints_the_frame_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["decode", "FE FE 68 10 45 41 10 05 15 33 78 81 16 90 1F AA 00 59 59 00 2C FF FF FF FF 2C",
                 "FF FF FF FF FF FF FF 00 00 C2 16"])
    decoded = json.loads(capsys.readouterr().out)
    assert code == 0
    assert decoded["address"] == "78331505104145" and decoded["checksum"] == {"ok": True, "value": "c2"}
    assert decoded["values"][0]["value"] == "5959.00" and decoded["values"][0]["unit"] == "m3"
    assert decoded["status"]["valve"] == "open" and decoded["data_id"] == "901F"


def test_decode_of_a_bad_frame_prints_the_reason_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "68129078563412689108333334338967453355 16"]) == 1
    assert "checksum_mismatch" in capsys.readouterr().err


def test_decode_with_a_profile_uses_its_vendor_layout(capsys: pytest.CaptureFixture[str]) -> None:
    frame = "68 10 01 00 00 05 08 00 00 AA 05 A0 17 00 01 FF EC 16"
    assert main(["decode", frame, "--profile", "cjt188-water-foxedge"]) == 0
    assert "vendor control code AA" in json.loads(capsys.readouterr().out)["function"]


@pytest.mark.parametrize(("argv", "expected"), [
    (["valve-close", "--protocol", "cjt188", "--address", "78331505900569", "--ser", "1"],
     "FE FE FE FE 68 10 69 05 90 05 15 33 78 04 04 A0 17 01 99 94 16"),
    (["valve-open", "--profile", "cjt188-water-foxedge", "--address", "00000805000001"],
     "FE FE FE 68 10 01 00 00 05 08 00 00 2A 04 A0 17 00 55 C0 16"),
    (["read", "--protocol", "dlt645", "--address", "123456789012"],
     "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16"),
    (["time-sync", "--protocol", "dlt645", "--at", "2017-06-05T10:22:51"],
     "FE FE FE FE 68 99 99 99 99 99 99 68 08 06 84 55 43 38 39 4A 4B 16"),
    (["relay-trip", "--protocol", "dlt645", "--address", "201905241006", "--at", "2026-07-01T08:30:00"],
     "FE FE FE FE 68 06 10 24 05 19 20 68 1C 10 35 33 33 33 33 33 33 33 4D 33 33 63 3B 34 3A 59 26 16"),
])
def test_encode_prints_the_request_frame(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["encode", *argv]) == 0
    assert capsys.readouterr().out.strip() == expected


@pytest.mark.parametrize("argv", [
    ["relay-trip", "--protocol", "cjt188", "--address", "1"],
    ["valve-open", "--protocol", "dlt645", "--address", "1"],
    ["read", "--protocol", "cjt188"],
    ["read", "--profile", "dlt645-single-phase", "--protocol", "cjt188", "--address", "1"],
    ["time-sync", "--protocol", "dlt645", "--at", "yesterday"],
])
def test_encode_refuses_what_cannot_be_built_and_exits_1(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["encode", *argv]) == 1
    assert capsys.readouterr().err.startswith("refused")
