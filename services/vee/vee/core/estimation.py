"""Estimation in the spec's order of preference (vee.md §2).

Between two valid reads the total is known exactly (E3): the gap is only shaped — linearly when it
is short (E4, ≤ 2 h), else like the like days (E5), else like the class profile (E6), else flat — and
the shape is scaled to the register delta. After the last read (an open end) there is no total:
a short gap copies the last interval's rate (E4 "flat load"), a longer one takes the like days
as they are (E5) or average daily use converted back to a register read (E7).
Estimates are provisional: the next derivation with more reads replaces them.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import accumulate, pairwise
from uuid import UUID

from amiflow_schemas.events.readings import EstimationMethod

from vee.core.chain import Chain, Endpoint, UsageHistory, days_between
from vee.core.context import MeterContext
from vee.core.grid import DAY, HOUR, local_midnight, seconds
from vee.core.registers import ESTIMATE_QUANTUM, open_ended_register, tidy
from vee.core.rules import VeeParameters

ParametersAt = Callable[[datetime], VeeParameters]
Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Estimate:
    """An estimated slot: its register on the chain and how it was made."""

    at: datetime
    effective: Decimal  # unwrapped register of the device in place
    position: Decimal
    method: EstimationMethod
    meter_id: str
    source_event_id: UUID | None


class LikeDays:
    """E5's reference: actual interval use of clean local days (no outage, estimate or gap) [IEE-HIST].

    A day is looked at only when a gap asks for it: a series read in order has no gap to shape, and a gap
    asks for a few weeks back, so nothing walks the whole kept history.
    """

    def __init__(self, chain: Chain, context: MeterContext) -> None:
        self._context, self._grid = context, context.grid
        self._endpoints = chain.endpoints
        self._ats = [e.at for e in chain.endpoints]
        self._days: dict[date, dict[time, Decimal] | None] = {}  # a clean day's use by local time; None: unclean

    def _day(self, day: date) -> dict[time, Decimal] | None:
        """The use of each interval that starts on ``day``, if the day is clean."""
        if day in self._days:
            return self._days[day]
        zone = self._context.zone
        # A day's endpoints by instant, a day wider on each side: the local date decides, as it always did.
        first = bisect.bisect_left(self._ats, local_midnight(day, zone) - DAY)
        last = bisect.bisect_left(self._ats, local_midnight(day + DAY, zone) + DAY)
        use: dict[time, Decimal] = {}
        count, dirty = 0, False
        for before, after in pairwise(self._endpoints[first:last + 1]):
            if before.is_actual and after.is_actual and after.at == self._grid.next(before.at):
                local = before.at.astimezone(zone)
                if local.date() != day:
                    continue
                use[local.time()] = after.position - before.position
                count += 1
                dirty = dirty or before.outage or after.outage
        self._days[day] = use if not dirty and count == self._grid.slots_per_day(day) else None
        return self._days[day]

    def _like(self, target: date, parameters: VeeParameters) -> list[date]:
        kind = self._context.day_kind(target)
        candidates = (target - timedelta(days=k) for k in range(1, parameters.like_day_lookback.days + 1))
        found = [d for d in candidates if self._day(d) is not None and self._context.day_kind(d) == kind]
        return found[:parameters.like_days]

    def weights(self, intervals: Sequence[Interval], parameters: VeeParameters) -> list[Decimal] | None:
        """The mean use of each interval on the nearest like days, None unless all are known."""
        weights = []
        for start, end in intervals:
            if end != self._grid.next(start):
                return None
            local = start.astimezone(self._context.zone)
            days = self._like(local.date(), parameters)
            found = [(self._day(d) or {}).get(local.time()) for d in days]
            if len(days) < parameters.like_days or None in found:
                return None
            weights.append(sum((f for f in found if f is not None), Decimal(0)) / len(found))
        return weights


def profile_weights(intervals: Sequence[Interval], context: MeterContext) -> list[Decimal] | None:
    """E6: the class profile's share of each interval [MDMR][IEE-LS]."""
    profile = context.profile
    if profile is None:
        return None
    if context.grid.daily:
        return [profile.daily_weights[context.day_kind(s.astimezone(context.zone).date())] for s, _ in intervals]
    return [profile.hourly_weights[s.astimezone(context.zone).hour] * seconds(e - s) / seconds(HOUR)
            for s, e in intervals]


def _bounded_shape(intervals: Sequence[Interval], span: timedelta, like: LikeDays, context: MeterContext,
                   parameters: VeeParameters) -> tuple[EstimationMethod, list[Decimal]]:
    durations = [seconds(end - start) for start, end in intervals]
    if span <= parameters.interpolation_limit:
        return EstimationMethod.LINEAR_INTERPOLATION, durations
    for method, weights in ((EstimationMethod.LIKE_DAY, like.weights(intervals, parameters)),
                            (EstimationMethod.PROFILE, profile_weights(intervals, context))):
        if weights is not None and sum(weights) > 0:
            return method, weights
    return EstimationMethod.REGISTER_SPREAD, durations


def _on_chain(at: datetime, target: Decimal, base: Endpoint, method: EstimationMethod,
              source: UUID | None) -> Estimate:
    # The register is what the dials would show; the position follows from it so that the next
    # interval's consumption closes exactly on the next read (totals telescope).
    multiplier = base.device.multiplier
    effective = tidy((base.high + (target - base.position) / multiplier).quantize(ESTIMATE_QUANTUM))
    position = base.position + (effective - base.high) * multiplier
    return Estimate(at, effective, position, method, base.device.meter_id, source)


def fill_bounded(before: Endpoint, after: Endpoint, slots: Sequence[datetime], like: LikeDays,
                 context: MeterContext, parameters: VeeParameters) -> list[Estimate]:
    """E3: spread the exact register delta over a gap in the best available shape."""
    intervals = list(pairwise([before.at, *slots, after.at]))
    method, weights = _bounded_shape(intervals, after.at - before.at, like, context, parameters)
    total, whole = after.position - before.position, sum(weights)
    source = after.value.source_event_id if after.value else None
    estimates = []
    for slot, running in zip(slots, accumulate(weights), strict=False):
        base = before if context.device_at(slot).meter_id == before.device.meter_id else after
        estimates.append(_on_chain(slot, before.position + total * running / whole, base, method, source))
    return estimates


def fill_open(last: Endpoint, slots: Sequence[datetime], like: LikeDays, history: UsageHistory,
              parameters: VeeParameters) -> list[Estimate]:
    """An open end: flat copy if short (E4), like days (E5), else average daily use (E7)."""
    source = last.value.source_event_id if last.value else None
    rate = history.last_rate(last.at)
    if slots[-1] - last.at <= parameters.interpolation_limit and rate is not None:
        method = EstimationMethod.LINEAR_INTERPOLATION
        return [_on_chain(s, last.position + rate * seconds(s - last.at), last, method, source) for s in slots]
    weights = like.weights(list(pairwise([last.at, *slots])), parameters)
    if weights is not None:
        return [_on_chain(s, last.position + w, last, EstimationMethod.LIKE_DAY, source)
                for s, w in zip(slots, accumulate(weights), strict=True)]
    adu = history.average_daily_use(last.at, since=last.at - parameters.adu_window)
    if adu is None:
        return []
    estimates = []
    for slot in slots:
        register = open_ended_register(last.high, adu, days_between(last.at, slot), last.device)
        position = last.position + (register - last.high) * last.device.multiplier
        estimates.append(Estimate(slot, register, position, EstimationMethod.AVERAGE_DAILY_USAGE,
                                  last.device.meter_id, source))
    return estimates


def estimate_gaps(chain: Chain, until: datetime | None, context: MeterContext,
                  parameters: ParametersAt, since: datetime | None = None) -> dict[datetime, Estimate]:
    """Estimates for every empty slot between endpoints, and after the last one up to ``until``; given
    ``since``, only in the gaps that end after it."""
    grid, like = context.grid, LikeDays(chain, context)
    estimates: dict[datetime, Estimate] = {}
    first = 0 if since is None else bisect.bisect_right(chain.endpoints, since, key=lambda e: e.at) - 1
    for before, after in pairwise(chain.endpoints[max(first, 0):]):
        slots = [s for s in grid.slots(grid.next(grid.floor(before.at)), after.at) if s < after.at]
        rules = parameters(before.at)
        if slots and after.at - before.at <= rules.max_estimated_gap:
            estimates.update((e.at, e) for e in fill_bounded(before, after, slots, like, context, rules))
    last = chain.endpoints[-1] if chain.endpoints else None
    removed = last is not None and last.value is None and last.at == last.device.removed_at
    if last is not None and not removed and until is not None and until > last.at:
        rules = parameters(last.at)
        slots = list(grid.slots(grid.next(grid.floor(last.at)), min(until, last.at + rules.max_estimated_gap)))
        if slots:
            estimates.update((e.at, e) for e in fill_open(last, slots, like, chain.history, rules))
    return estimates
