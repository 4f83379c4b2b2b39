"""VEE's vocabulary: raw reads as kept, manual edits, check codes, validated points and per-meter state.

Raw data is immutable: every read ever received stays in the state as it came, and the validated
series is derived from the reads and edits again whenever one arrives (vee.md §0). That makes the
series independent of arrival order, and lets an edit or a late read re-derive its neighbours.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from amiflow_schemas.events.alarms import AlarmType
from amiflow_schemas.events.devices import DeviceAlarmFlag
from amiflow_schemas.events.readings import EstimationMethod, ReadingReceived, RegisterValue, ValidationStatus
from amiflow_schemas.primitives import ExactDecimal, Identifier, NonNegativeDecimal, PositiveDecimal, Text
from pydantic import AwareDatetime, Field, PositiveInt

from vee.core.stored import Stored


class ReadFlag(StrEnum):
    """Status bits that came with a read (V6)."""

    POWER_FAILURE = "power_failure"  # outage: annotated, never an estimation reference
    CLOCK_INVALID = "clock_invalid"  # the time stamp cannot be trusted (V3)
    REVERSE_FLOW = "reverse_flow"  # the device itself saw backflow (§4)
    DEVICE_FAULT = "device_fault"


_FLAG_OF_DEVICE_ALARM = {
    DeviceAlarmFlag.POWER_FAILURE: ReadFlag.POWER_FAILURE,
    DeviceAlarmFlag.CLOCK_INVALID: ReadFlag.CLOCK_INVALID,
    DeviceAlarmFlag.REVERSE_FLOW: ReadFlag.REVERSE_FLOW,
    DeviceAlarmFlag.DEVICE_FAULT: ReadFlag.DEVICE_FAULT,
}


def read_flags(alarms: Iterable[DeviceAlarmFlag]) -> tuple[ReadFlag, ...]:
    """The read flags among a device's alarm bits reported with a reading."""
    return tuple(sorted({_FLAG_OF_DEVICE_ALARM[a] for a in alarms if a in _FLAG_OF_DEVICE_ALARM}))


class RawRead(Stored):
    """A reading as received, kept unchanged."""

    source_event_id: UUID
    meter_id: Identifier
    measured_at: AwareDatetime  # the meter's clock
    registers: Annotated[tuple[RegisterValue, ...], Field(min_length=1)]
    received_at: AwareDatetime | None = None  # the head-end's clock; newer data wins a tie (V15)
    multiplier: PositiveDecimal | None = None  # what the payload claims, checked by V5
    flags: tuple[ReadFlag, ...] = ()


def raw_read(received: ReadingReceived, event_id: UUID, flags: Iterable[DeviceAlarmFlag] = (),
             multiplier: Decimal | None = None) -> RawRead:
    """The raw read of a ReadingReceived event (and the device alarm bits that came with it)."""
    return RawRead(source_event_id=event_id, meter_id=received.meter_id, measured_at=received.measured_at,
                   registers=received.registers, received_at=received.received_at, multiplier=multiplier,
                   flags=read_flags(flags))


class ManualEdit(Stored):
    """An operator's new register value for a slot, or its deletion (vee.md §3 edit log)."""

    edit_id: UUID
    measured_at: AwareDatetime
    value: NonNegativeDecimal | None  # the new register value; None deletes the slot's value
    edited_by: Identifier
    edited_at: AwareDatetime
    reason_code: Identifier
    comment: Text | None = None


class EditNote(Stored):
    """Who made the edit a point carries, and which version of the slot's edits it is."""

    edit_id: UUID
    version: PositiveInt
    edited_by: Identifier
    edited_at: AwareDatetime
    reason_code: Identifier
    comment: Text | None


class Severity(StrEnum):
    """Oracle's severities (vee.md §0)."""

    INFORMATION = "information"  # logged
    ISSUE = "issue"  # blocks finalisation; several may accumulate
    TERMINATE = "terminate"  # the read is rejected outright


class Check(StrEnum):
    """A validation finding on a point, named by the check of vee.md §1 that made it."""

    CONFLICT = "V2_conflict"  # another read of the slot differed; the newer one was kept
    CLOCK_ADJUSTED = "V3_clock_adjusted"  # moved to its slot and flagged (5-15 min)
    DEMAND_EXCLUDED = "V3_demand_excluded"  # off by more than 30 s: left out of demand
    CLOCK_INVALID = "V3_clock_invalid"
    CONFIGURATION = "V4_configuration"
    MULTIPLIER = "V5_multiplier"
    DIAL_OVERFLOW = "V5_dial_overflow"  # wider than the dials
    OUTAGE = "V6_outage"
    DEVICE_FAULT = "V6_device_fault"
    NEGATIVE = "V7_negative"  # a misread: neither rollover, exchange nor reverse flow
    REVERSE_FLOW = "V7_reverse_flow"
    ROLLOVER = "V8_rollover"
    INACTIVE_USAGE = "V10_inactive_usage"
    HIGH = "V11_high"
    LOW = "V11_low"
    SPIKE = "V12_spike"
    SUM = "V13_sum"
    HELD_BY_EDIT = "V15_held_by_edit"  # an actual came for a manually edited slot
    DELETED_BY_EDIT = "V15_deleted_by_edit"
    SETTLED = "V15_settled"  # the period was pruned from VEE's state
    IMPLAUSIBLE_ESTIMATE = "V17_implausible_estimate"


SEVERITY: dict[Check, Severity] = {
    **dict.fromkeys(Check, Severity.ISSUE),
    **dict.fromkeys((Check.CLOCK_ADJUSTED, Check.DEMAND_EXCLUDED, Check.OUTAGE, Check.DEVICE_FAULT,
                     Check.ROLLOVER, Check.REVERSE_FLOW, Check.HIGH, Check.LOW, Check.DELETED_BY_EDIT),
                    Severity.INFORMATION),
    **dict.fromkeys((Check.CONFIGURATION, Check.SETTLED), Severity.TERMINATE),
}

_CHECK_ORDER = {check: index for index, check in enumerate(Check)}


def ordered_checks(checks: Iterable[Check]) -> tuple[Check, ...]:
    """Checks without repeats, in the order of vee.md §1."""
    return tuple(sorted(set(checks), key=_CHECK_ORDER.__getitem__))


BILLABLE = frozenset({ValidationStatus.ACTUAL, ValidationStatus.ESTIMATED, ValidationStatus.EDITED})


class SeriesPoint(Stored):
    """One slot of the validated series: the post-VEE copy of a reading (vee.md §0)."""

    at: AwareDatetime
    status: ValidationStatus
    method: EstimationMethod | None
    meter_id: Identifier
    registers: tuple[RegisterValue, ...]  # empty only when missing
    # Consumption since previous_at, multiplier applied. A failed point keeps what the registers say
    # (V10 usage on an inactive meter) for review; only a billable point's consumption is billed.
    consumption: ExactDecimal | None
    previous_at: AwareDatetime | None
    reverse_volume: NonNegativeDecimal | None = None
    register_consumption: tuple[RegisterValue, ...] | None = None  # time-of-use deltas
    checks: tuple[Check, ...] = ()
    source_event_id: UUID | None  # the read; for an estimate the read that closed the gap; for an edit its id
    edit: EditNote | None = None
    rule_id: Identifier

    @property
    def billable(self) -> bool:
        """True when billing may rate this point's consumption."""
        return self.status in BILLABLE and self.consumption is not None


class PublishedPoint(Stored):
    """The current version of a slot as VEE last published it."""

    version: PositiveInt
    publication_id: UUID  # the id of the ReadingValidated / ReadingCorrected that carried it
    point: SeriesPoint


class EpisodeOrigin(StrEnum):
    """What an episode was derived from; each origin reconciles only its own episodes."""

    SERIES = "series"  # the validated series and its aggregates
    DEVICE = "device"  # the device's own status reports
    SILENCE = "silence"  # the clock: nothing heard for too long
    DISTRICT = "district"


class AlarmEpisode(Stored):
    """One raised alarm, open until its condition ends."""

    alarm_id: UUID
    kind: AlarmType
    origin: EpisodeOrigin
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None


class MeterSeries(Stored):
    """Everything VEE keeps per metering point (one Faust table row / database row)."""

    series_id: Identifier
    reads: tuple[RawRead, ...] = ()  # by (measured_at, source_event_id)
    edits: tuple[ManualEdit, ...] = ()  # every version, never overwritten (vee.md §3)
    estimated_until: AwareDatetime | None = None  # how far open-ended estimates reach
    published: tuple[PublishedPoint, ...] = ()  # by slot
    episodes: tuple[AlarmEpisode, ...] = ()
    last_heard_at: AwareDatetime | None = None
    last_status_at: AwareDatetime | None = None
    settled_before: AwareDatetime | None = None  # slots before this are final (see engine.prune)
    # The context and rules the published points were last derived with (engine.fingerprint); None: a whole
    # derivation is due. While they stay the same, a new read re-derives only the days it can reach.
    derived_with: str | None = None

    def knows(self, read: RawRead) -> bool:
        """True when this read (by its event id) was applied already: redelivery changes nothing."""
        return any(r.source_event_id == read.source_event_id for r in self.reads)

    def with_read(self, read: RawRead) -> MeterSeries:
        """The state with one more raw read, kept in time order."""
        reads = list(self.reads)
        bisect.insort(reads, read, key=lambda r: (r.measured_at, str(r.source_event_id)))
        return self.model_copy(update={"reads": tuple(reads)})

    def published_at(self) -> dict[datetime, PublishedPoint]:
        """The published points by slot."""
        return {p.point.at: p for p in self.published}
