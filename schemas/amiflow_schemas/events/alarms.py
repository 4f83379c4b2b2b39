"""Alarms VEE raises and clears on meters and districts (vee.md §1 and §5)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Self
from uuid import UUID

from pydantic import AwareDatetime, model_validator

from amiflow_schemas.payload import EventPayload
from amiflow_schemas.primitives import ExactDecimal, Identifier, Text, Utility


class AlarmType(StrEnum):
    """What the alarm is about."""

    CONTINUOUS_FLOW = "continuous_flow"  # leak: no flow-free hour in 24 h
    BURST = "burst"  # flow above a share of Q3 for 30 min
    BACKFLOW = "backflow"
    DRY_PIPE = "dry_pipe"
    TAMPER = "tamper"
    NO_CONSUMPTION = "no_consumption"  # stopped meter (V9)
    HIGH_CONSUMPTION = "high_consumption"  # V11
    LOW_CONSUMPTION = "low_consumption"  # V11
    SPIKE = "spike"  # V12
    NEGATIVE_CONSUMPTION = "negative_consumption"  # V7
    USAGE_ON_INACTIVE_METER = "usage_on_inactive_meter"  # V10
    CLOCK_DRIFT = "clock_drift"  # V3
    PROLONGED_ESTIMATION = "prolonged_estimation"  # V14: needs a field visit
    BATTERY_LOW = "battery_low"
    VALVE_ABNORMAL = "valve_abnormal"
    DISTRICT_IMBALANCE = "district_imbalance"  # DMA non-revenue water
    NIGHT_FLOW = "night_flow"  # DMA minimum night flow
    NO_COMMUNICATION = "no_communication"  # nothing heard from the meter for N hours
    UNBILLED_CONSUMPTION = "unbilled_consumption"  # billing: validated use no account pays for


class AlarmSeverity(StrEnum):
    """How urgently someone must act."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlarmSubject(StrEnum):
    """What an alarm is raised on; the subject id is the Kafka key."""

    METER = "meter"
    DISTRICT = "district"  # a district metered area (DMA)


class MeasureUnit(StrEnum):
    """The unit of an alarm's observed and threshold values."""

    M3 = "m3"
    M3_PER_HOUR = "m3/h"
    KWH = "kWh"
    GJ = "GJ"
    PERCENT = "%"
    SECONDS = "s"
    DAYS = "d"
    COUNT = "count"


class AlarmRaised(EventPayload):
    """An abnormal condition began on a meter or a district."""

    EVENT_TYPE: ClassVar[str] = "AlarmRaised"
    EVENT_VERSION: ClassVar[int] = 1

    alarm_id: UUID  # the same id is carried by the AlarmCleared that ends it
    alarm_type: AlarmType
    severity: AlarmSeverity
    subject: AlarmSubject
    subject_id: Identifier
    utility: Utility
    rule_id: Identifier  # the effective-dated rule version that fired, e.g. "leak-24h@2026-01"
    detected_at: AwareDatetime  # event time: when the condition was observed, not processed
    window_start: AwareDatetime | None
    window_end: AwareDatetime | None
    observed_value: ExactDecimal | None
    threshold_value: ExactDecimal | None
    value_unit: MeasureUnit | None
    description: Text

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        has_value = self.observed_value is not None or self.threshold_value is not None
        if has_value != (self.value_unit is not None):
            raise ValueError("value_unit is given exactly when a value is")
        if (self.window_start is None) != (self.window_end is None):
            raise ValueError("window_start and window_end are given together or not at all")
        if self.window_start and self.window_end and self.window_start >= self.window_end:
            raise ValueError("window_start must be before window_end")
        return self


class ClearReason(StrEnum):
    """Why an alarm ended."""

    CONDITION_ENDED = "condition_ended"
    OPERATOR_CLOSED = "operator_closed"
    METER_REPLACED = "meter_replaced"


class AlarmCleared(EventPayload):
    """An alarm raised earlier ended."""

    EVENT_TYPE: ClassVar[str] = "AlarmCleared"
    EVENT_VERSION: ClassVar[int] = 1

    alarm_id: UUID
    alarm_type: AlarmType
    subject: AlarmSubject
    subject_id: Identifier
    cleared_at: AwareDatetime
    reason: ClearReason
    cleared_by: Identifier | None  # the operator when closed by hand

    @model_validator(mode="after")
    def _operator_named(self) -> Self:
        if (self.reason is ClearReason.OPERATOR_CLOSED) != (self.cleared_by is not None):
            raise ValueError("cleared_by is given exactly when an operator closed the alarm")
        return self


class AlarmAcknowledged(EventPayload):
    """An operator took note of an open alarm; it stays open until its condition ends or is closed."""

    EVENT_TYPE: ClassVar[str] = "AlarmAcknowledged"
    EVENT_VERSION: ClassVar[int] = 1

    alarm_id: UUID
    alarm_type: AlarmType
    subject: AlarmSubject
    subject_id: Identifier
    acknowledged_at: AwareDatetime
    acknowledged_by: Identifier
    note: Text | None
