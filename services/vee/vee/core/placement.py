"""Putting raw reads and edits on the read grid: V4, V5, V6, V3, then V2 and V15 per slot.

The choice among several reads of one slot depends only on the reads themselves (clock offset,
head-end receive time, event id), never on the order they arrived in, so the series is the same
whatever order Kafka delivers them in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from amiflow_schemas.events.readings import RegisterValue

from vee.core.context import MeterContext, MeterDevice
from vee.core.model import SEVERITY, Check, EditNote, ManualEdit, RawRead, ReadFlag, Severity
from vee.core.rules import VeeParameters
from vee.core.validation import BILLING_REGISTER, billing_register

ParametersAt = Callable[[datetime], VeeParameters]


@dataclass(frozen=True, slots=True)
class SlotValue:
    """What a slot holds after placement: a read or an edit, or a deleted value."""

    at: datetime
    device: MeterDevice
    register: Decimal | None  # None: deleted by an edit
    registers: tuple[RegisterValue, ...]
    checks: tuple[Check, ...]
    failed: bool  # holds a value, but not one to compute consumption from
    source_event_id: UUID | None
    flags: tuple[ReadFlag, ...]
    edit: EditNote | None = None
    received_at: datetime | None = None

    @property
    def is_actual(self) -> bool:
        """A read from the meter that passed placement (not an edit)."""
        return self.edit is None and not self.failed and self.register is not None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A read refused outright (V4 terminate): it occupies no slot."""

    read: RawRead
    checks: tuple[Check, ...]


def _clock_checks(offset: timedelta, flags: Iterable[ReadFlag], parameters: VeeParameters) -> list[Check]:
    # Trilliant: < 5 min silent fix, 5-15 min fix + flag, beyond invalid; CIRWATT: > 30 s leaves demand.
    checks = [Check.DEMAND_EXCLUDED] if offset > parameters.clock_demand_tolerance else []
    if offset > parameters.clock_flag_limit or ReadFlag.CLOCK_INVALID in flags:
        return [*checks, Check.CLOCK_INVALID]
    return [*checks, Check.CLOCK_ADJUSTED] if offset > parameters.clock_silent_fix else checks


def _device_checks(read: RawRead, register: RegisterValue, device: MeterDevice) -> list[Check]:
    checks = []
    if read.multiplier is not None and read.multiplier != device.multiplier:
        checks.append(Check.MULTIPLIER)
    modulus = device.modulus
    if register.value < 0 or (modulus is not None and register.value >= modulus):
        checks.append(Check.DIAL_OVERFLOW)
    if ReadFlag.POWER_FAILURE in read.flags:
        checks.append(Check.OUTAGE)
    if ReadFlag.DEVICE_FAULT in read.flags:
        checks.append(Check.DEVICE_FAULT)
    return checks


def place_read(read: RawRead, context: MeterContext, parameters: ParametersAt) -> SlotValue | Rejection:
    """The slot value a read makes, or its rejection when it does not fit the master data (V4)."""
    grid = context.grid
    slot = grid.nearest(read.measured_at)
    rules = parameters(slot)
    device = context.device(read.meter_id)
    register = billing_register(read.registers)
    if device is None or register.unit is not context.unit or not device.in_place(slot, rules.clock_flag_limit):
        return Rejection(read, (Check.CONFIGURATION,))
    checks = _clock_checks(abs(read.measured_at - slot), read.flags, rules)
    checks += _device_checks(read, register, device)
    failed = any(SEVERITY[c] is Severity.ISSUE for c in checks)
    return SlotValue(slot, device, register.value, read.registers, tuple(checks), failed, read.source_event_id,
                     read.flags, received_at=read.received_at)


_LATEST = datetime.max.replace(tzinfo=UTC)


def _rank(value: SlotValue, read: RawRead) -> tuple[bool, timedelta, timedelta, str]:
    # Good reads first, then the one closest to its slot, then the newest at the head-end (V15);
    # never the order of arrival, so any delivery order picks the same read.
    age = _LATEST - read.received_at if read.received_at else timedelta.max
    return value.failed, abs(read.measured_at - value.at), age, str(read.source_event_id)


def _choose(candidates: Sequence[tuple[SlotValue, RawRead]]) -> SlotValue:
    if len(candidates) == 1:  # nearly every slot: one read, nothing to choose or to flag
        return candidates[0][0]
    best, _ = min(candidates, key=lambda c: _rank(*c))
    differing = any(not v.failed and v.register != best.register for v, _ in candidates)
    return replace(best, checks=(*best.checks, Check.CONFLICT)) if differing else best


def _current_edits(edits: Sequence[ManualEdit], context: MeterContext) -> dict[datetime, tuple[ManualEdit, int]]:
    by_slot: dict[datetime, list[ManualEdit]] = defaultdict(list)
    for edit in edits:
        by_slot[context.grid.nearest(edit.measured_at)].append(edit)
    current = {}
    for slot, versions in by_slot.items():
        versions.sort(key=lambda e: (e.edited_at, str(e.edit_id)))
        current[slot] = (versions[-1], len(versions))
    return current


def _edited(slot: datetime, edit: ManualEdit, version: int, read: SlotValue | None,
            context: MeterContext) -> SlotValue:
    device = read.device if read else context.device_at(slot)
    note = EditNote(edit_id=edit.edit_id, version=version, edited_by=edit.edited_by, edited_at=edit.edited_at,
                    reason_code=edit.reason_code, comment=edit.comment)
    held = () if read is None else (Check.HELD_BY_EDIT if edit.value is not None else Check.DELETED_BY_EDIT,)
    name = read.registers[0].register if read else BILLING_REGISTER
    registers = () if edit.value is None else (RegisterValue(register=name, value=edit.value, unit=context.unit),)
    # The edit is its own source: a held read arriving later must not change the published point.
    return SlotValue(slot, device, edit.value, registers, held, False, edit.edit_id, (), note)


def _edit_wins(edit: ManualEdit, read: SlotValue | None, parameters: VeeParameters) -> bool:
    # Manual edits outrank later automatic data unless the tenant configured otherwise [ORA-FMR].
    if read is None or parameters.protect_manual_edits or read.received_at is None:
        return True
    return read.received_at <= edit.edited_at


def place(reads: Sequence[RawRead], edits: Sequence[ManualEdit], context: MeterContext,
          parameters: ParametersAt) -> tuple[dict[datetime, SlotValue], list[Rejection]]:
    """Every slot's value and the reads rejected outright."""
    candidates: dict[datetime, list[tuple[SlotValue, RawRead]]] = defaultdict(list)
    rejected = []
    for read in reads:
        placed = place_read(read, context, parameters)
        if isinstance(placed, Rejection):
            rejected.append(placed)
        else:
            candidates[placed.at].append((placed, read))
    values = {slot: _choose(found) for slot, found in candidates.items()}
    for slot, (edit, version) in _current_edits(edits, context).items():
        held = values.get(slot)
        if _edit_wins(edit, held, parameters(slot)):
            values[slot] = _edited(slot, edit, version, held, context)
    return values, rejected
