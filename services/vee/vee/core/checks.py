"""Checks over more than one read: spike (V12), high/low (V11), sums (V13), completeness (V1), quality (V16)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise

from amiflow_schemas.events.readings import RegisterValue, ValidationStatus

from vee.core.chain import Chain
from vee.core.context import MeterContext
from vee.core.grid import local_date
from vee.core.model import Check, SeriesPoint
from vee.core.registers import sum_within_tolerance
from vee.core.rules import VeeParameters

ParametersAt = Callable[[datetime], VeeParameters]
_TIME_OF_USE = re.compile(r"^T[0-9]$")


def spike_failures(chain: Chain, context: MeterContext, parameters: ParametersAt) -> frozenset[datetime]:
    """V12: per local day, the highest interval fails when it exceeds the third-highest x ratio [ORA-SPK].

    Returns the slots whose reads close a spike. A day with fewer than three intervals, or whose third
    highest is zero (a ratio to nothing says nothing), is not judged.
    """
    grid = context.grid
    if grid.daily:
        return frozenset()
    by_day: dict[date, list[tuple[Decimal, datetime]]] = defaultdict(list)
    for before, after in pairwise(chain.endpoints):
        if before.is_actual and after.is_actual and after.at == grid.next(before.at):
            by_day[local_date(before.at, context.zone)].append((after.position - before.position, after.at))
    failed = set()
    for intervals in by_day.values():
        if len(intervals) < 3:
            continue
        ranked = sorted(intervals, key=lambda i: (-i[0], i[1]))
        highest, third = ranked[0], ranked[2][0]
        if third > 0 and highest[0] / third > parameters(highest[1]).spike_ratio:
            failed.add(highest[1])
    return frozenset(failed)


def high_or_low(consumption: Decimal, days: Decimal, average_daily_use: Decimal,
                parameters: VeeParameters) -> Check | None:
    """V11 against the normalised history: high above 200 % and at least 5 units, low below 50 % [CUR-THR]."""
    expected = average_daily_use * days
    if expected <= 0:
        return None
    ratio = consumption / expected
    if ratio > parameters.high_ratio and consumption >= parameters.high_min_consumption:
        return Check.HIGH
    return Check.LOW if ratio < parameters.low_ratio else None


def register_deltas(before: Sequence[RegisterValue], after: Sequence[RegisterValue],
                    multiplier: Decimal) -> tuple[RegisterValue, ...] | None:
    """Per-register consumption between two reads of one device; None if any register went down."""
    previous = {r.register: r.value for r in before}
    deltas = []
    for register in after:
        if register.register in previous:
            delta = (register.value - previous[register.register]) * multiplier
            if delta < 0:
                return None
            deltas.append(RegisterValue(register=register.register, value=delta, unit=register.unit))
    return tuple(deltas)


def time_of_use_consistent(deltas: Sequence[RegisterValue], total: Decimal, multiplier: Decimal,
                           parameters: VeeParameters) -> bool:
    """V13: the time-of-use registers add up to the total register's delta [ORA-SUM]."""
    tou = [d.value for d in deltas if _TIME_OF_USE.match(d.register)]
    return not tou or sum_within_tolerance(total, sum(tou, Decimal(0)), multiplier, parameters)


def scale_to_register(intervals: Sequence[Decimal], estimated: Sequence[bool], total: Decimal) -> tuple[Decimal, ...]:
    """Scale interval values so they add up to the register delta: only the estimated ones if any [ORA-ADJ].

    T10: 24.6 over intervals summing to 21.0 → 1.05 becomes 1.05 x 24.6 / 21.0 = 1.23. The last scaled
    value takes the rounding remainder, so the sum is exactly the register delta.
    """
    scaled_ones = [i for i, e in enumerate(estimated) if e] or list(range(len(intervals)))
    fixed = sum((v for i, v in enumerate(intervals) if i not in scaled_ones), Decimal(0))
    base = sum((intervals[i] for i in scaled_ones), Decimal(0))
    if base == 0:
        raise ValueError("cannot scale intervals that add up to zero")
    result = list(intervals)
    for i in scaled_ones[:-1]:
        result[i] = intervals[i] * (total - fixed) / base
    last = scaled_ones[-1]
    result[last] = total - fixed - sum((result[i] for i in scaled_ones[:-1]), Decimal(0))
    return tuple(result)


@dataclass(frozen=True, slots=True)
class DayCompleteness:
    """V1 for one local day: how many slots it should hold and what they hold."""

    day: date
    expected: int  # 24, or 23 / 25 on DST days, for hourly reads
    by_status: dict[ValidationStatus, int]

    @property
    def missing(self) -> int:
        """Slots without any value, counted or not."""
        present = sum(n for s, n in self.by_status.items() if s is not ValidationStatus.MISSING)
        return max(self.expected - present, 0)


def completeness(points: Sequence[SeriesPoint], day: date, context: MeterContext) -> DayCompleteness:
    """V1: the slots a local day should hold against the statuses it holds."""
    counts: dict[ValidationStatus, int] = defaultdict(int)
    for point in points:
        if local_date(point.at, context.zone) == day:
            counts[point.status] += 1
    return DayCompleteness(day, context.grid.slots_per_day(day), dict(counts))


@dataclass(frozen=True, slots=True)
class BillingQuality:
    """V16 over a billing period: the share of slots that are not actual or edited [IEE-DQ]."""

    slots: int
    not_actual: int
    share: Decimal
    hold: bool


def billing_quality(points: Sequence[SeriesPoint], expected_slots: int, parameters: VeeParameters) -> BillingQuality:
    """Whether too much of a period is estimated or missing to export it for billing."""
    good = sum(1 for p in points if p.status in (ValidationStatus.ACTUAL, ValidationStatus.EDITED))
    not_actual = max(expected_slots, len(points)) - good
    share = Decimal(not_actual) / Decimal(max(expected_slots, 1))
    return BillingQuality(expected_slots, not_actual, share, share > parameters.billing_max_estimated_share)
