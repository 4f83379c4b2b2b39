"""A meter's consumption as the fold of its validated readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from amiflow_schemas.events.readings import ReadingValidated, ValidationStatus
from amiflow_schemas.primitives import Unit, Utility
from billing.core.consumption import MeterConsumption, UnitMismatch, evolve

AT = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
SOURCE = UUID("00000000-0000-4000-8000-000000000003")


def _validated(consumption: str | None, measured_at: datetime = AT, status: str = "actual") -> ReadingValidated:
    document: dict[str, Any] = {
        "meter_id": "WM-1", "utility": "water", "measured_at": measured_at,
        "registers": [{"register": "total", "value": "100", "unit": "m3"}],
        "consumption": consumption, "consumption_unit": "m3" if consumption is not None else None,
        "previous_measured_at": None, "status": status, "estimation_method": None,
        "source_event_id": SOURCE,
    }
    return ReadingValidated.model_validate(document)


def _fold(*readings: ReadingValidated) -> MeterConsumption:
    state = None
    for reading in readings:
        state = evolve(state, reading)
    assert state is not None
    return state


def test_consumption_is_summed_exactly() -> None:
    state = _fold(_validated("0.1"), _validated("0.2", AT + timedelta(hours=1)),
                  _validated("0.300", AT + timedelta(hours=2)))
    assert state.total == Decimal("0.600")
    assert state.unit is Unit.M3
    assert (state.meter_id, state.utility) == ("WM-1", Utility.WATER)


def test_every_reading_is_counted_including_a_first_one_without_consumption() -> None:
    state = _fold(_validated(None), _validated("1.5", AT + timedelta(hours=1)))
    assert state.readings == 2
    assert state.total == Decimal("1.5")


def test_failed_readings_are_counted_but_add_no_consumption() -> None:
    failed = _validated(None, AT + timedelta(hours=1), status="failed")
    state = _fold(_validated("2"), failed)
    assert state.total == Decimal("2")
    assert state.readings == 2


def test_a_failed_status_wins_over_a_consumption_it_should_not_carry() -> None:
    # The schema refuses this combination; model_copy skips validation, so evolve's own guard is tested.
    failed = _validated("5", AT + timedelta(hours=1)).model_copy(update={"status": ValidationStatus.FAILED})
    state = _fold(_validated("2"), failed)
    assert state.total == Decimal("2")


def test_failed_reading_alone_leaves_no_unit() -> None:
    state = _fold(_validated(None, status="failed"))
    assert state.unit is None
    assert state.total == Decimal(0)


def test_last_measured_at_stays_the_newest_when_an_older_reading_arrives_late() -> None:
    newest = AT + timedelta(days=2)
    state = _fold(_validated("1", newest), _validated("1", AT))
    assert state.last_measured_at == newest



def test_heat_consumption_in_another_unit_is_refused_not_summed() -> None:
    def heat(consumption: str, unit: str, at: datetime) -> ReadingValidated:
        return ReadingValidated.model_validate({
            "meter_id": "HM-1", "utility": "heat", "measured_at": at,
            "registers": [{"register": "total", "value": "10", "unit": unit}],
            "consumption": consumption, "consumption_unit": unit, "previous_measured_at": None,
            "status": "actual", "estimation_method": None, "source_event_id": SOURCE,
        })

    state = evolve(None, heat("1.5", "GJ", AT))
    with pytest.raises(UnitMismatch, match="GJ"):
        evolve(state, heat("2", "kWh", AT + timedelta(hours=1)))
