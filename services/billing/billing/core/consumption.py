"""A meter's billable consumption as billing has seen it: the fold of its validated readings."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from amiflow_schemas.events.readings import ReadingValidated, ValidationStatus
from amiflow_schemas.primitives import Unit, Utility

# Only these carry consumption billing may rate; failed and missing values wait for VEE.
BILLABLE = frozenset({ValidationStatus.ACTUAL, ValidationStatus.ESTIMATED, ValidationStatus.EDITED})


@dataclass(frozen=True)
class MeterConsumption:
    """Running totals per meter; rating against tariffs and accounts joins with the billing issue."""

    meter_id: str
    utility: Utility
    unit: Unit | None
    total: Decimal
    readings: int
    last_measured_at: datetime


class UnitMismatch(ValueError):
    """Consumption in a unit other than the meter's: summing them would be wrong, so it is refused."""


def evolve(state: MeterConsumption | None, reading: ReadingValidated) -> MeterConsumption:
    """The meter's totals after one more validated reading."""
    if state is None:
        state = MeterConsumption(reading.meter_id, reading.utility, None, Decimal(0), 0, reading.measured_at)
    billable = reading.status in BILLABLE and reading.consumption is not None
    if billable and state.unit is not None and reading.consumption_unit is not state.unit:
        raise UnitMismatch(f"meter {reading.meter_id} consumption is kept in {state.unit.value}, "
                           f"a reading came in {reading.consumption_unit}")
    return replace(
        state,
        unit=reading.consumption_unit if billable else state.unit,
        total=state.total + reading.consumption if billable and reading.consumption is not None else state.total,
        readings=state.readings + 1,
        last_measured_at=max(state.last_measured_at, reading.measured_at),
    )
