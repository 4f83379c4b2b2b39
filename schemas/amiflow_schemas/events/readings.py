"""Readings: as received from a meter, and as VEE validated, estimated or corrected them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, PositiveInt, model_validator

from amiflow_schemas.payload import EventPayload, PayloadPart, shadowing_abc_register
from amiflow_schemas.primitives import (
    ExactDecimal,
    HexBytes,
    Identifier,
    ReadingSource,
    RegisterName,
    Text,
    Unit,
    Utility,
    check_unit,
)

with shadowing_abc_register():

    class RegisterValue(PayloadPart):
        """One register of a meter at one instant, e.g. ``total`` = 1234.56 m3."""

        # Field() keeps it required: without it pydantic takes ABCMeta.register as the default.
        register: RegisterName = Field()
        value: ExactDecimal
        unit: Unit


Registers = Annotated[tuple[RegisterValue, ...], Field(max_length=64)]


def _check_registers(utility: Utility, registers: tuple[RegisterValue, ...]) -> None:
    names = [r.register for r in registers]
    if len(names) != len(set(names)):
        raise ValueError(f"register names repeat: {names}")
    for register in registers:
        check_unit(utility, register.unit)


class ReadingReceived(EventPayload):
    """A meter's register values as ingest decoded them, before any validation."""

    EVENT_TYPE: ClassVar[str] = "ReadingReceived"
    EVENT_VERSION: ClassVar[int] = 1

    meter_id: Identifier
    utility: Utility
    measured_at: AwareDatetime  # the meter's clock (event time), not the head-end's
    registers: Annotated[Registers, Field(min_length=1)]
    source: ReadingSource
    gateway_id: Identifier | None  # the DTU or concentrator; None for HTTP and manual reads
    # Optional additions within v1 (older events lack them): the raw frame the reading was
    # decoded from, for protocol engineers, and when the head-end received it.
    frame_hex: HexBytes | None = None
    received_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _units_fit_utility(self) -> Self:
        _check_registers(self.utility, self.registers)
        return self


class ValidationStatus(StrEnum):
    """The VEE status of a reading (vee.md §0)."""

    ACTUAL = "actual"
    ESTIMATED = "estimated"
    EDITED = "edited"
    FAILED = "failed"
    MISSING = "missing"


class EstimationMethod(StrEnum):
    """How an estimated reading was made, in VEE's order of preference (vee.md §2, E2-E7)."""

    CHECK_METER = "check_meter"  # E2: validated alternate meter
    REGISTER_SPREAD = "register_spread"  # E3: register delta shaped by E4-E6
    LINEAR_INTERPOLATION = "linear_interpolation"  # E4, including the one-sided flat copy
    LIKE_DAY = "like_day"  # E5
    PROFILE = "profile"  # E6
    AVERAGE_DAILY_USAGE = "average_daily_usage"  # E7: open-ended, no closing read yet


class ReadingEdit(PayloadPart):
    """Who edited a reading by hand and why (vee.md §3 edit log)."""

    edited_by: Identifier
    reason_code: Identifier
    comment: Text | None


class ValidatedReading(EventPayload):
    """The post-VEE facts shared by a first validation and a later correction."""

    meter_id: Identifier
    utility: Utility
    measured_at: AwareDatetime
    registers: Registers  # empty only when status is missing
    # Consumption since the previous reading of the billing register, multiplier applied;
    # None for a meter's first reading and for failed or missing values.
    consumption: ExactDecimal | None
    consumption_unit: Unit | None
    previous_measured_at: AwareDatetime | None
    status: ValidationStatus
    estimation_method: EstimationMethod | None
    source_event_id: UUID  # the ReadingReceived (or gap-closing reading) this came from
    # Per-register deltas for time-of-use rating (T1..T4); None when only a total is derived.
    register_consumption: Registers | None = None
    edit: ReadingEdit | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_registers(self.utility, self.registers)
        if not self.registers and self.status is not ValidationStatus.MISSING:
            raise ValueError("registers may be empty only for a missing reading")
        if (self.consumption is None) != (self.consumption_unit is None):
            raise ValueError("consumption and consumption_unit are given together or not at all")
        if self.consumption_unit is not None:
            check_unit(self.utility, self.consumption_unit)
        if self.consumption is not None and self.status in _UNBILLABLE:
            raise ValueError(f"a {self.status.value} reading carries no consumption")
        estimated = self.status is ValidationStatus.ESTIMATED
        if estimated != (self.estimation_method is not None):
            raise ValueError("estimation_method is given exactly when status is estimated")
        if (self.status is ValidationStatus.EDITED) != (self.edit is not None):
            raise ValueError("edit is given exactly when status is edited")
        if self.previous_measured_at is not None and self.previous_measured_at >= self.measured_at:
            raise ValueError("previous_measured_at must be before measured_at")
        return self


_UNBILLABLE = frozenset({ValidationStatus.FAILED, ValidationStatus.MISSING})


class ReadingValidated(ValidatedReading):
    """A reading after validation and, where needed, estimation: what billing rates."""

    EVENT_TYPE: ClassVar[str] = "ReadingValidated"
    EVENT_VERSION: ClassVar[int] = 1


class CorrectionReason(StrEnum):
    """Why an already published reading was replaced."""

    LATE_ACTUAL = "late_actual"  # an actual replaced an estimate (vee.md T4, T19)
    RE_ESTIMATED = "re_estimated"  # a later read turned an open-ended estimate into a bounded one
    MANUAL_EDIT = "manual_edit"
    METER_EXCHANGE = "meter_exchange"
    ROLLOVER = "rollover"


class ReadingCorrected(ValidatedReading):
    """A new version of a published reading; consumers re-derive from it, history is kept."""

    EVENT_TYPE: ClassVar[str] = "ReadingCorrected"
    EVENT_VERSION: ClassVar[int] = 1

    reading_version: Annotated[PositiveInt, Field(ge=2)]
    supersedes_event_id: UUID  # the ReadingValidated or ReadingCorrected this one replaces
    correction_reason: CorrectionReason
