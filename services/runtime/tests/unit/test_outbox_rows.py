"""Outbox rows: each event on its registry topic, keyed and encoded as consumers expect."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from amiflow_runtime.outbox import outbox_rows
from amiflow_schemas import decode_event
from amiflow_schemas.examples import example_envelope, example_payloads
from amiflow_schemas.topics import topic_for_event

NOW = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize("event_type", ["ReadingReceived", "BalanceDepleted", "CommandFailed"])
def test_an_event_goes_to_the_topic_of_its_type_keyed_and_decodable(event_type: str) -> None:
    envelope = example_envelope(example_payloads()[event_type])
    [row] = outbox_rows([envelope], NOW)
    assert row["topic"] == topic_for_event(event_type).name
    assert row["message_key"] == envelope.key.encode()
    assert decode_event(row["message_value"]) == envelope
    assert ["event_type", event_type] in json.loads(row["headers"])
    assert row["created_at"] == NOW


def test_one_row_per_event_in_order() -> None:
    payloads = example_payloads()
    envelopes = [example_envelope(payloads[name]) for name in ("ReadingReceived", "ReadingValidated")]
    rows = outbox_rows(envelopes, NOW)
    assert [r["topic"] for r in rows] == [topic_for_event(e.event_type).name for e in envelopes]
    assert rows[0]["topic"] != rows[1]["topic"]
