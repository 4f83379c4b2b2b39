"""Validating a reading against the meter's baseline: first reads, deltas, and what fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from amiflow_schemas.events.readings import ReadingReceived, ValidationStatus
from amiflow_schemas.primitives import Unit
from vee.core.validation import RegisterBaseline, billing_register, validate

AT = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
SOURCE = UUID("00000000-0000-4000-8000-000000000002")


def _reading(*registers: tuple[str, str, str], measured_at: datetime = AT) -> ReadingReceived:
    document: dict[str, Any] = {
        "meter_id": "EM-1", "utility": "electricity", "measured_at": measured_at,
        "registers": [{"register": name, "value": value, "unit": unit} for name, value, unit in registers],
        "source": "http", "gateway_id": None,
    }
    return ReadingReceived.model_validate(document)


def _total(value: str, measured_at: datetime = AT, unit: str = "kWh") -> ReadingReceived:
    return _reading(("total", value, unit), measured_at=measured_at)


BASELINE = RegisterBaseline(AT - timedelta(days=1), Decimal("100.500"), Unit.KWH)


def test_a_meters_first_reading_is_the_baseline_without_consumption() -> None:
    verdict = validate(None, _total("100.500"), SOURCE)
    assert verdict.reading.status is ValidationStatus.ACTUAL
    assert verdict.reading.consumption is None
    assert verdict.reading.source_event_id == SOURCE
    assert verdict.baseline == RegisterBaseline(AT, Decimal("100.500"), Unit.KWH)
    assert verdict.failure is None


def test_a_register_that_moved_forward_gives_exact_consumption() -> None:
    verdict = validate(BASELINE, _total("101.250"), SOURCE)
    assert verdict.reading.status is ValidationStatus.ACTUAL
    assert verdict.reading.consumption == Decimal("0.750")
    assert str(verdict.reading.consumption) == "0.750"
    assert verdict.reading.consumption_unit is Unit.KWH
    assert verdict.reading.previous_measured_at == BASELINE.measured_at
    assert verdict.baseline == RegisterBaseline(AT, Decimal("101.250"), Unit.KWH)


def test_register_that_went_backwards_fails_and_keeps_the_baseline() -> None:
    verdict = validate(BASELINE, _total("99.000"), SOURCE)
    assert verdict.reading.status is ValidationStatus.FAILED
    assert verdict.reading.consumption is None
    assert verdict.failure is not None and "backwards" in verdict.failure
    assert verdict.baseline == BASELINE


def test_a_changed_register_unit_fails_and_keeps_the_baseline() -> None:
    verdict = validate(BASELINE, _total("200", unit="kvarh"), SOURCE)
    assert verdict.reading.status is ValidationStatus.FAILED
    assert verdict.failure is not None and "unit" in verdict.failure
    assert verdict.baseline == BASELINE


def test_a_reading_older_than_the_baseline_is_kept_without_consumption() -> None:
    verdict = validate(BASELINE, _total("90", measured_at=BASELINE.measured_at - timedelta(hours=1)), SOURCE)
    assert verdict.reading.status is ValidationStatus.ACTUAL
    assert verdict.reading.consumption is None
    assert verdict.failure is None
    assert verdict.baseline == BASELINE


def test_the_billing_register_is_total_wherever_it_is() -> None:
    reading = _reading(("T1", "1", "kWh"), ("total", "3", "kWh"), ("T2", "2", "kWh"))
    assert billing_register(reading.registers).register == "total"


def test_without_total_the_first_register_is_billed() -> None:
    reading = _reading(("T2", "2", "kWh"), ("T1", "1", "kWh"))
    assert billing_register(reading.registers).register == "T2"
