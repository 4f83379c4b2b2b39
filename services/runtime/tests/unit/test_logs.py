"""Structured logs: one JSON line per record, with the context ids of the enclosing block."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from amiflow_runtime.logs import configure_logging, log_context


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
              if isinstance(logger, logging.Logger)}
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_a_record_in_a_context_is_one_json_line_with_service_and_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc", "api", "INFO", "json")
    with log_context(tenant_id="t1", event_id="e1", meter_id="m1"):
        logging.getLogger("amiflow.test").info("reading stored")
    [line] = _lines(capsys)
    record = json.loads(line)
    assert record["level"] == "INFO"
    assert record["logger"] == "amiflow.test"
    assert record["message"] == "reading stored"
    assert (record["service"], record["process_role"]) == ("svc", "api")
    assert record["time"]
    assert (record["tenant_id"], record["event_id"], record["meter_id"]) == ("t1", "e1", "m1")


def test_ids_are_gone_once_the_block_ends(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc", "api", "INFO", "json")
    with log_context(tenant_id="t1", event_id="e1", meter_id="m1"):
        pass
    logging.getLogger("amiflow.test").info("outside")
    [line] = _lines(capsys)
    record = json.loads(line)
    assert record["message"] == "outside"
    assert not {"tenant_id", "event_id", "meter_id"} & record.keys()


def test_nested_contexts_add_ids_and_none_is_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc", "worker", "INFO", "json")
    with log_context(tenant_id="t1"), log_context(meter_id="m1", event_id=None):
        logging.getLogger("amiflow.test").info("nested")
    record = json.loads(_lines(capsys)[0])
    assert (record["tenant_id"], record["meter_id"]) == ("t1", "m1")
    assert "event_id" not in record


def test_records_below_the_level_are_not_written(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc", "api", "WARNING", "json")
    logging.getLogger("amiflow.test").info("too quiet")
    assert _lines(capsys) == []


def test_text_format_puts_the_ids_in_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc", "api", "INFO", "text")
    with log_context(tenant_id="t1", event_id="e1", meter_id="m1"):
        logging.getLogger("amiflow.test").info("reading stored")
    [line] = _lines(capsys)
    assert line.endswith("INFO    amiflow.test: reading stored [tenant_id=t1 event_id=e1 meter_id=m1]")
