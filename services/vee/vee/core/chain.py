"""The register chain: valid reads and device anchors in time order, with consumption positions.

A position is the consumption since the chain's first endpoint, multiplier applied. Within a device
it advances with the register's high-water mark; at a meter exchange it runs through the old meter's
removal read and the new one's installation read and is never a difference between two devices
(vee.md §4, T7: (8518 - 8512) + (12 - 3) = 15). Any interval's consumption is a difference of
positions, so totals over a gap are exact whatever the estimation shape (§0).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from vee.core.context import MeterContext, MeterDevice
from vee.core.grid import seconds
from vee.core.model import Check, ReadFlag
from vee.core.placement import SlotValue
from vee.core.registers import Movement, classify, forward
from vee.core.rules import VeeParameters

ParametersAt = Callable[[datetime], VeeParameters]
_SECONDS_PER_DAY = Decimal(86400)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A point of the chain whose register (and so position) is known."""

    at: datetime
    device: MeterDevice
    effective: Decimal  # unwrapped register: what the dials show plus wraps x modulus
    high: Decimal  # the register's high-water mark once this read is taken
    position: Decimal
    value: SlotValue | None  # None: an installation or removal anchor, not a slot
    movement: Movement | None  # None: the first endpoint of a device
    # A valid read from the meter (not an edit, not an anchor): ``_actual(value)``. Kept, not computed: the like
    # days, V12 and the usage history ask it of every endpoint, every derivation.
    is_actual: bool
    reverse: Decimal = Decimal(0)  # consumption units that ran back since the previous endpoint

    @property
    def outage(self) -> bool:
        """The read came with a power-failure flag: no estimation reference (V6)."""
        return self.value is not None and Check.OUTAGE in self.value.checks


@dataclass
class UsageHistory:
    """Actual consumption intervals in time order, for average daily use (V11, E7, plausibility)."""

    ends: list[datetime] = field(default_factory=list)
    consumed: list[Decimal] = field(default_factory=lambda: [Decimal(0)])  # prefix sums
    elapsed: list[Decimal] = field(default_factory=lambda: [Decimal(0)])  # prefix sums, in seconds

    def add(self, start: datetime, end: datetime, consumption: Decimal) -> None:
        """Record one interval between two actual reads."""
        self.ends.append(end)
        self.consumed.append(self.consumed[-1] + consumption)
        self.elapsed.append(self.elapsed[-1] + seconds(end - start))

    def _between(self, since: datetime | None, at: datetime) -> tuple[Decimal, Decimal]:
        last = bisect.bisect_right(self.ends, at)
        first = bisect.bisect_right(self.ends, since) if since is not None else 0
        return self.consumed[last] - self.consumed[first], self.elapsed[last] - self.elapsed[first]

    def average_daily_use(self, at: datetime, *, since: datetime | None = None) -> Decimal | None:
        """Consumption per day of the intervals ending in (since, at], None without any."""
        consumption, span = self._between(since, at)
        return None if span <= 0 else consumption * _SECONDS_PER_DAY / span

    def covered_days(self, at: datetime, since: datetime) -> Decimal:
        """How many days of actual intervals end in (since, at]."""
        return self._between(since, at)[1] / _SECONDS_PER_DAY

    def last_rate(self, at: datetime) -> Decimal | None:
        """Consumption per second of the last interval ending at or before ``at``."""
        index = bisect.bisect_right(self.ends, at)
        if index == 0:
            return None
        span = self.elapsed[index] - self.elapsed[index - 1]
        return (self.consumed[index] - self.consumed[index - 1]) / span


@dataclass(frozen=True, slots=True)
class Chain:
    """The chain's endpoints, the reads V7 failed, and the usage history built on the way."""

    endpoints: tuple[Endpoint, ...]
    misreads: frozenset[datetime]
    history: UsageHistory


def _anchors(context: MeterContext, first_slot: datetime | None,
             parameters: ParametersAt) -> list[tuple[datetime, int, int, MeterDevice, Decimal]]:
    anchors = []
    for index, device in enumerate(context.devices):
        if device.installed_at is not None and device.installation_reading is not None:
            # The first device's installation opens the series only when it is recent enough to
            # estimate across; a meter registered years after it was fitted starts at its first read.
            recent = first_slot is None or (
                first_slot - device.installed_at <= parameters(first_slot).max_estimated_gap)
            if index > 0 or recent:
                anchors.append((device.installed_at, index, 0, device, device.installation_reading))
        if device.removed_at is not None and device.removal_reading is not None:
            anchors.append((device.removed_at, index, 2, device, device.removal_reading))
    return anchors


def _typical_use(history: UsageHistory, last: Endpoint, at: datetime, parameters: VeeParameters) -> Decimal | None:
    adu = history.average_daily_use(last.at, since=last.at - parameters.adu_window)
    return None if adu is None else adu * days_between(last.at, at)


class _ChainBuilder:
    """Appends endpoints in time order, classifying each register movement against the last one."""

    def __init__(self, parameters: ParametersAt) -> None:
        self.parameters = parameters
        self.endpoints: list[Endpoint] = []
        self.misreads: set[datetime] = set()
        self.history = UsageHistory()

    def add(self, at: datetime, device: MeterDevice, register: Decimal, value: SlotValue | None) -> None:
        last = self.endpoints[-1] if self.endpoints else None
        if last is None or last.device.meter_id != device.meter_id:
            # A device's first endpoint: its register starts a new scale, the position carries on.
            position = last.position if last else Decimal(0)
            self.endpoints.append(Endpoint(at, device, register, register, position, value, None, _actual(value)))
            return
        wraps = _wraps(last)
        step = forward(last.effective, wraps, register, device)  # most reads: no rules, no typical use
        if step is None:
            rules = self.parameters(at)
            step = classify(last.effective, wraps, register, device, _typical_use(self.history, last, at, rules),
                            rules, value is not None and ReadFlag.REVERSE_FLOW in value.flags,
                            manual=value is not None and value.edit is not None)
        if step.movement is Movement.MISREAD and value is not None:
            self.misreads.add(at)
            return
        advance = max(Decimal(0), step.effective - last.high)
        endpoint = Endpoint(at, device, step.effective, max(last.high, step.effective),
                            last.position + advance * device.multiplier, value, step.movement, _actual(value),
                            step.dropped * device.multiplier)
        if last.is_actual and endpoint.is_actual and not (last.outage or endpoint.outage):
            self.history.add(last.at, at, endpoint.position - last.position)
        self.endpoints.append(endpoint)


def _actual(value: SlotValue | None) -> bool:
    return value is not None and value.is_actual


def walk(values: Mapping[datetime, SlotValue], excluded: frozenset[datetime], context: MeterContext,
         parameters: ParametersAt) -> Chain:
    """Place every usable slot value and device anchor on the chain, failing misreads (V7)."""
    usable = [v for v in values.values() if v.register is not None and not v.failed and v.at not in excluded]
    order = {d.meter_id: i for i, d in enumerate(context.devices)}
    items: list[tuple[datetime, int, int, MeterDevice, Decimal, SlotValue | None]] = [
        (*anchor, None) for anchor in _anchors(context, min((v.at for v in usable), default=None), parameters)]
    items += [(v.at, order[v.device.meter_id], 1, v.device, v.register, v) for v in usable if v.register is not None]
    builder = _ChainBuilder(parameters)
    for at, _, _, device, register, value in sorted(items, key=lambda item: item[:3]):
        builder.add(at, device, register, value)
    return Chain(tuple(builder.endpoints), frozenset(builder.misreads), builder.history)


def _wraps(endpoint: Endpoint) -> int:
    modulus = endpoint.device.modulus
    return 0 if modulus is None else int(endpoint.effective // modulus)


def days_between(start: datetime, end: datetime) -> Decimal:
    """The length of [start, end) in days, exactly."""
    return seconds(end - start) / _SECONDS_PER_DAY

