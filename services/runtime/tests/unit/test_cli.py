"""The `amiflow` CLI's pure parts (log rendering, options, tables) and its process supervisor."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from types import SimpleNamespace

import pytest
from amiflow_runtime import cli


def _record(**fields: object) -> str:
    base = {"time": "2025-01-31 12:34:56,789", "level": "INFO", "logger": "ingest.worker",
            "message": "reading stored", "service": "ingest", "process_role": "worker"}
    return json.dumps({**base, **fields})


def test_json_line_is_rendered_with_time_label_level_and_ids() -> None:
    line = _record(tenant_id="t1", meter_id="m-42", event_id=None)
    assert cli.render_line("ingest-worker", line) == (
        "12:34:56 ingest-worker   INFO    reading stored [tenant_id=t1 meter_id=m-42]"
    )


def test_json_line_without_ids_has_no_brackets_and_label_comes_from_the_record() -> None:
    line = _record(service="vee", process_role="api", level="warning", message="slow")
    assert cli.render_line("whatever", line) == "12:34:56 vee-api         WARNING slow"


def test_exception_text_is_indented_under_the_line() -> None:
    text = cli.render_line("billing-api", _record(level="ERROR", exc_info="Traceback\nBoom"))
    assert text.splitlines()[1:] == ["    Traceback", "    Boom"]


def test_non_json_lines_pass_through_with_the_process_name() -> None:
    assert cli.render_line("notify-api", "Traceback (most recent call last):") == (
        "notify-api      Traceback (most recent call last):"
    )
    not_a_record = '{"not": "a log record"}'
    assert cli.render_line("vee-worker", not_a_record) == f"vee-worker      {not_a_record}"
    assert cli.render_line("vee-worker", "{broken") == "vee-worker      {broken"


def test_colour_wraps_label_only_when_asked() -> None:
    plain = cli.render_line("ingest-api", _record())
    coloured = cli.render_line("ingest-api", _record(), colour=True)
    assert "\033[" not in plain
    assert "\033[36m" in coloured
    assert cli.render_line("commands-api", "x", colour=True).startswith("\033[33m")


def test_services_option_orders_and_validates() -> None:
    assert cli.parse_services("notify, ingest") == ["ingest", "notify"]
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_services("ingest,nope")


def test_ports_come_from_env_or_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VEE_API_PORT", raising=False)
    monkeypatch.delenv("VEE_OPS_PORT", raising=False)
    assert (cli.api_port("vee"), cli.ops_port("vee")) == (8002, 8102)
    monkeypatch.setenv("VEE_API_PORT", "9002")
    assert (cli.api_port("vee"), cli.ops_port("vee")) == (9002, 9102)


def test_topic_table() -> None:
    specs = [SimpleNamespace(name="a.readings", partitions=12, cleanup_policy="delete", retention_ms=-1),
             SimpleNamespace(name="a.state", partitions=3, cleanup_policy="compact", retention_ms=-1),
             SimpleNamespace(name="a.x", partitions=1, cleanup_policy="delete", retention_ms=7 * 86_400_000)]
    lines = cli.format_topic_table(specs, ["a.state"]).splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITIONS", "CLEANUP", "RETENTION", "STATUS"]
    assert lines[1].split() == ["a.readings", "12", "delete", "forever", "exists"]
    assert lines[2].split() == ["a.state", "3", "compact", "-", "created"]
    assert lines[3].split() == ["a.x", "1", "delete", "7d", "exists"]
    assert cli.human_ms(90_000) == "90s" and cli.human_ms(1500) == "1500ms"


def test_main_returns_codes_instead_of_exiting() -> None:
    assert cli.main(["--help"]) == 0
    assert cli.main(["up", "--services", "nope"]) == 2


def _spawn(sup: cli.Supervisor, name: str, code: str) -> cli.Child:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return sup.spawn(name, [sys.executable, "-c", code], env)


def test_supervisor_reports_an_exiting_child_and_stops_the_rest() -> None:
    out = io.StringIO()
    sup = cli.Supervisor(out=out)
    sleeper = _spawn(sup, "vee-api", "import time; time.sleep(60)")
    _spawn(sup, "ingest-api", "import sys; print('bye'); sys.exit(3)")
    try:
        assert sup.watch(poll_s=0.05) == 3
    finally:
        sup.stop_all(timeout_s=5)
    assert sleeper.proc.returncode is not None
    assert "ingest-api      bye" in out.getvalue()
    assert "ingest-api (pid" in out.getvalue() and "exited with code 3" in out.getvalue()


def test_supervisor_kills_a_child_that_ignores_sigterm() -> None:
    out = io.StringIO()
    sup = cli.Supervisor(out=out)
    stubborn = _spawn(sup, "notify-worker", "import signal, time\n"
                      "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready')\ntime.sleep(60)")
    deadline = time.monotonic() + 10
    while "ready" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    sup.stop_all(timeout_s=0.5)
    assert stubborn.proc.returncode == -9
    assert "did not stop within" in out.getvalue()
