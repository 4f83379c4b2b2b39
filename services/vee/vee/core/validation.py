"""Validating a received reading against the meter's last accepted register value.

The walking skeleton's checks: a meter's first reading is accepted as the baseline; a register that
moved forward yields consumption (delta x 1, the multiplier arrives with the registry); a register
that went backwards fails (rollover and meter exchange belong to the full VEE); a reading older
than the baseline is accepted without consumption so it is not lost (merging comes with VEE).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from amiflow_schemas.events.readings import (
    ReadingReceived,
    ReadingValidated,
    RegisterValue,
    ValidationStatus,
)
from amiflow_schemas.primitives import Unit

BILLING_REGISTER = "total"


@dataclass(frozen=True)
class RegisterBaseline:
    """The last actual value of a meter's billing register: what the next delta starts from."""

    measured_at: datetime
    value: Decimal
    unit: Unit


@dataclass(frozen=True)
class Verdict:
    """A validated reading, the baseline to keep afterwards, and why it failed if it did."""

    reading: ReadingValidated
    baseline: RegisterBaseline | None
    failure: str | None


def billing_register(registers: tuple[RegisterValue, ...]) -> RegisterValue:
    """The register that is billed: `total`, else the first one the meter reported."""
    return next((r for r in registers if r.register == BILLING_REGISTER), registers[0])


def validate(baseline: RegisterBaseline | None, received: ReadingReceived, source_event_id: UUID) -> Verdict:
    """Decide the status and consumption of one reading given the meter's baseline."""
    register = billing_register(received.registers)
    current = RegisterBaseline(received.measured_at, register.value, register.unit)
    if baseline is None:
        return Verdict(_validated(received, source_event_id, ValidationStatus.ACTUAL), current, None)
    if received.measured_at <= baseline.measured_at:
        return Verdict(_validated(received, source_event_id, ValidationStatus.ACTUAL), baseline, None)
    if register.unit is not baseline.unit:
        failure = f"register unit changed from {baseline.unit.value} to {register.unit.value}"
        return Verdict(_validated(received, source_event_id, ValidationStatus.FAILED), baseline, failure)
    delta = register.value - baseline.value
    if delta < 0:
        failure = f"register went backwards by {-delta} {register.unit.value}"
        return Verdict(_validated(received, source_event_id, ValidationStatus.FAILED), baseline, failure)
    reading = _validated(received, source_event_id, ValidationStatus.ACTUAL,
                         consumption=delta, previous=baseline.measured_at)
    return Verdict(reading, current, None)


def _validated(received: ReadingReceived, source_event_id: UUID, status: ValidationStatus,
               consumption: Decimal | None = None, previous: datetime | None = None) -> ReadingValidated:
    register = billing_register(received.registers)
    return ReadingValidated(
        meter_id=received.meter_id, utility=received.utility, measured_at=received.measured_at,
        registers=received.registers, consumption=consumption,
        consumption_unit=register.unit if consumption is not None else None,
        previous_measured_at=previous, status=status, estimation_method=None,
        source_event_id=source_event_id,
    )
