"""The simulator command: defaults from the ingest environment, options into a fleet spec, and a run
that connects its DTUs, stops on request and reports."""

from __future__ import annotations

import asyncio
import logging

import pytest
from ingest.simulator.cli import build_parser, simulate, spec_of
from ingest.simulator.models import MeterKind


def test_defaults_follow_the_ingest_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_GATEWAY_PORT", "9300")
    monkeypatch.setenv("INGEST_API_PORT", "8301")
    monkeypatch.setenv("AMIFLOW_TIME_ZONE", "Asia/Urumqi")
    monkeypatch.delenv("INGEST_GATEWAY_HEARTBEAT_HEX", raising=False)
    args = build_parser().parse_args([])
    spec = spec_of(args)

    assert args.gateway == ("127.0.0.1", 9300) and args.api == "http://127.0.0.1:8301"
    assert spec.time_zone == "Asia/Urumqi" and spec.behaviour.heartbeat_s == 0  # the gateway knows no heartbeat


def test_heartbeats_default_on_when_the_gateway_knows_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_GATEWAY_HEARTBEAT_HEX", "4842")
    spec = spec_of(build_parser().parse_args([]))

    assert spec.behaviour.heartbeat == b"HB" and spec.behaviour.heartbeat_s == 60


def test_the_documented_command_line_parses() -> None:
    args = build_parser().parse_args(
        ["--meters", "1000", "--dtus", "50", "--gateway", "10.0.0.5:9100", "--api", "http://10.0.0.5:8001",
         "--tenant", "demo", "--seed", "1", "--register", "--prefix", "SIM", "--offline-rate", "0.01",
         "--leak-rate", "0.02", "--heartbeat-s", "60", "--duration-s", "30", "--mix", "water=3,electricity=1"])
    spec = spec_of(args)

    assert (spec.meters, spec.dtus, spec.seed, spec.prefix, spec.tenant) == (1000, 50, 1, "SIM", "demo")
    assert args.register and args.duration_s == 30 and args.gateway == ("10.0.0.5", 9100)
    assert spec.behaviour.offline_rate == 0.01 and spec.behaviour.heartbeat_s == 60 and spec.leak_rate == 0.02
    assert spec.mix == ((MeterKind.WATER, 3), (MeterKind.ELECTRICITY, 1))


@pytest.mark.parametrize("argv", [["--offline-rate", "1.5"], ["--gateway", "nowhere"], ["--mix", "steam=1"]])
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


async def test_a_run_connects_every_dtu_and_stops_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    logins: list[bytes] = []
    all_in = asyncio.Event()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        logins.append(await reader.readline())
        if len(logins) == 3:
            all_in.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    args = build_parser().parse_args(["--meters", "6", "--dtus", "3", "--gateway", f"127.0.0.1:{port}",
                                      "--summary-s", "0.1"])
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, "ingest.simulator")
    run = asyncio.create_task(simulate(args, stop))
    await asyncio.wait_for(all_in.wait(), 5)
    await asyncio.sleep(0.25)  # a summary or two
    stop.set()

    assert await asyncio.wait_for(run, 5) == 0
    assert sorted(line.strip().isdigit() and len(line.strip()) for line in logins) == [15, 15, 15]
    assert "3/3 DTUs connected" in caplog.text and "simulator stopped" in caplog.text
    server.close()


async def test_a_run_ends_after_its_duration() -> None:
    args = build_parser().parse_args(["--meters", "1", "--dtus", "1", "--gateway", "127.0.0.1:9",
                                      "--duration-s", "0.2"])

    assert await asyncio.wait_for(simulate(args), 5) == 0
