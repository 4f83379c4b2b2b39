"""The head-end's decisions on a submitted reading: sameness, duplicates, clock checks, the event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from amiflow_schemas.events.readings import ReadingReceived
from ingest.core.readings import (
    Outcome,
    PriorReading,
    ReadingRefused,
    check_clock,
    decide,
    fingerprint,
    received_event,
)

AT = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
EVENT_ID = UUID("00000000-0000-4000-8000-000000000001")


def _reading(*registers: tuple[str, str], measured_at: datetime = AT) -> ReadingReceived:
    document: dict[str, Any] = {
        "meter_id": "EM-1", "utility": "electricity", "measured_at": measured_at,
        "registers": [{"register": name, "value": value, "unit": "kWh"} for name, value in registers],
        "source": "http", "gateway_id": None,
    }
    return ReadingReceived.model_validate(document)


def test_trailing_zeros_do_not_change_the_fingerprint() -> None:
    assert fingerprint(_reading(("total", "7.5"))) == fingerprint(_reading(("total", "7.50")))


def test_negative_zero_is_the_same_reading_as_zero() -> None:
    assert fingerprint(_reading(("total", "-0.00"))) == fingerprint(_reading(("total", "0")))


def test_register_order_does_not_change_the_fingerprint() -> None:
    one = _reading(("T1", "1.0"), ("T2", "2.0"))
    other = _reading(("T2", "2.0"), ("T1", "1.0"))
    assert fingerprint(one) == fingerprint(other)


def test_a_different_value_changes_the_fingerprint() -> None:
    assert fingerprint(_reading(("total", "7.5"))) != fingerprint(_reading(("total", "7.6")))


def test_a_reading_never_seen_is_accepted() -> None:
    assert decide(None, _reading(("total", "7.5"))) is Outcome.ACCEPTED


def test_the_same_reading_again_is_a_duplicate() -> None:
    prior = PriorReading(EVENT_ID, fingerprint(_reading(("total", "7.5"))))
    assert decide(prior, _reading(("total", "7.50"))) is Outcome.DUPLICATE


def test_different_values_for_the_same_instant_are_a_conflict() -> None:
    prior = PriorReading(EVENT_ID, fingerprint(_reading(("total", "7.5"))))
    assert decide(prior, _reading(("total", "8.0"))) is Outcome.CONFLICT


def test_a_reading_further_ahead_than_the_skew_is_refused() -> None:
    reading = _reading(("total", "1"), measured_at=AT + timedelta(minutes=5, seconds=1))
    with pytest.raises(ReadingRefused, match="ahead of the head-end clock"):
        check_clock(reading, AT, timedelta(minutes=5))


def test_a_reading_just_within_the_skew_is_accepted() -> None:
    check_clock(_reading(("total", "1"), measured_at=AT + timedelta(minutes=5)), AT, timedelta(minutes=5))


def test_a_reading_days_late_is_accepted() -> None:
    check_clock(_reading(("total", "1"), measured_at=AT - timedelta(days=10)), AT, timedelta(minutes=5))


def test_received_event_is_keyed_by_meter_and_happens_when_measured() -> None:
    reading = _reading(("total", "7.5"), measured_at=AT - timedelta(hours=3))
    envelope = received_event(reading, tenant_id="t1", event_id=EVENT_ID, now=AT)
    assert envelope.key == "EM-1"
    assert envelope.occurred_at == reading.measured_at
    assert envelope.recorded_at == AT
    assert envelope.producer == "ingest"
    assert envelope.event_type == "ReadingReceived"
    assert envelope.correlation_id == EVENT_ID
    assert envelope.payload == reading
