"""The validated series as a function of the raw reads, the edits and the estimation horizon.

Order (vee.md §1, suggested): V4, V2, V5, V6, V3 (placement) → V7/V8 (the register chain) → V12 →
estimation → V10, V11, V13 and V17 on the assembled points. Nothing here depends on the order the
reads arrived in, which is what makes late and out-of-order data merge instead of being dropped.

A new read changes the series only from where it can reach (see ``_reach``): the slots before that are
derived as they were and are not assembled again, which keeps a reading's cost flat as history grows.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from amiflow_schemas.events.readings import RegisterValue, ValidationStatus

from vee.core.chain import Chain, Endpoint, UsageHistory, days_between, walk
from vee.core.checks import high_or_low, register_deltas, spike_failures, time_of_use_consistent
from vee.core.context import MeterContext
from vee.core.estimation import Estimate, estimate_gaps
from vee.core.grid import DAY, in_days, local_date, local_midnight
from vee.core.model import SEVERITY, Check, MeterSeries, PublishedPoint, SeriesPoint, Severity, ordered_checks
from vee.core.placement import Rejection, SlotValue, place
from vee.core.registers import Backflow, Movement, backflow_class, displayed_register
from vee.core.rules import RuleSet, RuleTimeline, VeeParameters
from vee.core.validation import BILLING_REGISTER


@dataclass(frozen=True, slots=True)
class Derivation:
    """The series, the reads refused outright, and the actual-use history (for alarms)."""

    points: tuple[SeriesPoint, ...]
    rejected: tuple[Rejection, ...]
    history: UsageHistory
    # Set when only the slots from here on were derived: the earlier ones are as the state published them.
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Previous:
    at: datetime
    position: Decimal
    point: SeriesPoint | None  # None: a device's installation read before the first slot


def derive_series(state: MeterSeries, context: MeterContext, rules: RuleSet,
                  changed_from: datetime | None = None) -> Derivation:
    """Derive the series from the state's raw reads and edits: every slot from the first read on, or, given
    the earliest slot new reads were placed at, only the local days from where they can reach.

    ``changed_from`` promises that the state's published points are this derivation's for every slot before
    it: nothing but reads from ``changed_from`` on was added since the last derivation, on the same context
    and rules (the engine keeps that promise with ``MeterSeries.derived_with``).
    """
    timeline = rules.timeline(context.groups)
    values, rejected = place(state.reads, state.edits, context, timeline.parameters)
    chain = walk(values, frozenset(), context, timeline.parameters)
    spikes = spike_failures(chain, context, timeline.parameters)
    if spikes:  # a spike's read no longer bounds anything: place the chain again without it
        chain = walk(values, spikes, context, timeline.parameters)
    if not values:
        return Derivation((), tuple(rejected), chain.history)
    reach = _reach(chain, min(values), context, changed_from) if changed_from is not None else None
    estimates = estimate_gaps(chain, state.estimated_until, context, timeline.parameters,
                              since=reach.anchor.at if reach else None)
    last = max(max(values), max(estimates, default=min(values)))
    previous = _published_before(reach, estimates, state.published) if reach else None
    if reach is None or previous is None:
        reach, previous = None, None  # the whole series, from its first slot
    slots = list(context.grid.slots(reach.since if reach else min(values), last))
    points = _assemble(slots, values, chain, estimates, spikes, context, timeline, previous)
    return Derivation(_revalidate_estimates(points, context, timeline), tuple(rejected), chain.history,
                      reach.since if reach else None)


@dataclass(frozen=True, slots=True)
class _Reach:
    """Where a change's effect on the series can begin."""

    since: datetime  # a local midnight: every slot from here on is derived again, whole local days
    anchor: Endpoint  # the last read on the chain before ``since``: no estimate before it matters


def _reach(chain: Chain, first_slot: datetime, context: MeterContext, changed_from: datetime) -> _Reach | None:
    """How far back reads placed from ``changed_from`` on can change the series; None: from its start.

    The chain is a left fold, so its endpoints before a new read stay. V12 judges a local day by its intervals,
    the one across midnight into the next day included, so the day before the read's can change too (its
    spike, excluded, moves the chain from there). A gap is shaped between its two bounding reads, so the gap
    that ends in the changed days is estimated again from the read before it. V17 judges whole local days.
    """
    zone, grid = context.zone, context.grid
    since = local_midnight(local_date(changed_from, zone) - DAY, zone)
    ats = [e.at for e in chain.endpoints]
    before = bisect.bisect_left(ats, since)
    if before == 0:
        return None
    opens = grid.next(grid.floor(chain.endpoints[before - 1].at))  # the first slot after the last read before
    since = min(since, local_midnight(local_date(opens, zone), zone))
    read = next((e for e in reversed(chain.endpoints[:bisect.bisect_left(ats, since)]) if e.value is not None),
                None)
    return None if read is None or since <= first_slot else _Reach(since, read)


def _published_before(reach: _Reach, estimates: Mapping[datetime, Estimate],
                      published: Sequence[PublishedPoint]) -> _Previous | None:
    """The slot before ``reach.since`` a consumption is counted from, as published; None if it was not kept."""
    at, position = reach.anchor.at, reach.anchor.position
    estimated = [e for e in estimates.values() if at < e.at < reach.since]
    if estimated:
        last = max(estimated, key=lambda e: e.at)
        at, position = last.at, last.position
    index = bisect.bisect_left(published, at, key=lambda p: p.point.at)
    if index == len(published) or published[index].point.at != at:
        return None  # settled and pruned, or never published: derive the whole series
    return _Previous(at, position, published[index].point)


def _assemble(slots: list[datetime], values: Mapping[datetime, SlotValue], chain: Chain,
              estimates: Mapping[datetime, Estimate], spikes: frozenset[datetime], context: MeterContext,
              timeline: RuleTimeline, previous: _Previous | None = None) -> list[SeriesPoint]:
    on_slots = {e.at: e for e in chain.endpoints if e.value is not None}
    if previous is None:
        opening = [e for e in chain.endpoints if e.value is None and slots and e.at < slots[0]]
        previous = _Previous(opening[-1].at, opening[-1].position, None) if opening else None
    points = []
    for slot in slots:
        failed = ((Check.NEGATIVE,) if slot in chain.misreads else ()) + ((Check.SPIKE,) if slot in spikes else ())
        fields, position = _draft(slot, values.get(slot), on_slots.get(slot), estimates.get(slot), failed,
                                  previous, context, timeline)
        point = _checked(fields, previous, chain.history, context, timeline)
        points.append(point)
        if position is not None:
            previous = _Previous(slot, position, point)
    return points


@dataclass(frozen=True, slots=True)
class _Value:
    status: ValidationStatus
    position: Decimal | None  # None: nothing to compute consumption from
    registers: tuple[RegisterValue, ...]
    meter_id: str


def _value(slot: datetime, value: SlotValue | None, endpoint: Endpoint | None, estimate: Estimate | None,
           context: MeterContext) -> _Value:
    if endpoint is not None and value is not None:
        status = ValidationStatus.EDITED if value.edit else ValidationStatus.ACTUAL
        return _Value(status, endpoint.position, value.registers, endpoint.device.meter_id)
    if estimate is not None:
        device = context.device(estimate.meter_id) or context.devices[0]
        name = value.registers[0].register if value and value.registers else BILLING_REGISTER
        shown = RegisterValue(register=name, value=displayed_register(estimate.effective, device), unit=context.unit)
        return _Value(ValidationStatus.ESTIMATED, estimate.position, (shown,), estimate.meter_id)
    if value is not None and value.register is not None:
        return _Value(ValidationStatus.FAILED, None, value.registers, value.device.meter_id)
    meter_id = value.device.meter_id if value else context.device_at(slot).meter_id
    return _Value(ValidationStatus.MISSING, None, (), meter_id)


def _draft(slot: datetime, value: SlotValue | None, endpoint: Endpoint | None, estimate: Estimate | None,
           failed: tuple[Check, ...], previous: _Previous | None, context: MeterContext,
           timeline: RuleTimeline) -> tuple[dict[str, Any], Decimal | None]:
    found = _value(slot, value, endpoint, estimate, context)
    counted = previous if found.position is not None else None
    estimated = found.status is ValidationStatus.ESTIMATED
    fields = dict(
        at=slot, status=found.status, method=estimate.method if estimated and estimate else None,
        meter_id=found.meter_id, registers=found.registers,
        consumption=found.position - counted.position if counted and found.position is not None else None,
        previous_at=counted.at if counted else None,
        reverse_volume=endpoint.reverse if endpoint and endpoint.reverse > 0 else None,
        checks=ordered_checks([*(value.checks if value else ()), *failed, *_movement_checks(endpoint, timeline)]),
        source_event_id=(value.source_event_id if value else None) or (estimate.source_event_id if estimate else None),
        edit=value.edit if value and found.status is ValidationStatus.EDITED else None,
        rule_id=timeline.at(slot).rule_id)
    return fields, found.position


def _movement_checks(endpoint: Endpoint | None, timeline: RuleTimeline) -> tuple[Check, ...]:
    if endpoint is None or endpoint.value is None:
        return ()
    if endpoint.movement is Movement.ROLLOVER:
        return (Check.ROLLOVER,)
    if endpoint.movement is Movement.REVERSE_FLOW:
        dropped = endpoint.reverse / endpoint.device.multiplier
        if backflow_class(dropped, endpoint.device, timeline.parameters(endpoint.at)) is not Backflow.JITTER:
            return (Check.REVERSE_FLOW,)
    return ()


@dataclass(frozen=True, slots=True)
class _Drafted:
    """What the point-level checks read of a point before it is made."""

    at: datetime
    status: ValidationStatus
    meter_id: str
    registers: tuple[RegisterValue, ...]
    consumption: Decimal | None
    previous_at: datetime | None
    checks: tuple[Check, ...]


def _checked(fields: dict[str, Any], previous: _Previous | None, history: UsageHistory, context: MeterContext,
             timeline: RuleTimeline) -> SeriesPoint:
    """V10, V11 and V13 on a point with consumption."""
    # The checks read the drafted point; the point is validated once, with their findings in.
    point = _Drafted(fields["at"], fields["status"], fields["meter_id"], fields["registers"], fields["consumption"],
                     fields["previous_at"], fields["checks"])
    if point.consumption is None or point.previous_at is None:
        return SeriesPoint(**fields)
    parameters = timeline.parameters(point.at)
    update: dict[str, object] = {}
    checks = [*point.checks, *_high_or_low(point, history, parameters)]
    if point.status in (ValidationStatus.ACTUAL, ValidationStatus.ESTIMATED) and point.consumption > 0 and (
            context.inactive_between(point.previous_at, point.at)):
        # V10: the registers say something was used while the service was off; review, do not bill.
        checks.append(Check.INACTIVE_USAGE)
        update |= {"status": ValidationStatus.FAILED, "method": None}
    before = previous.point if previous else None
    if before is not None and _same_register_run(before, point):
        multiplier = (context.device(point.meter_id) or context.devices[0]).multiplier
        deltas = register_deltas(before.registers, point.registers, multiplier)
        update["register_consumption"] = deltas
        if deltas and not time_of_use_consistent(deltas, point.consumption, multiplier, parameters):
            checks.append(Check.SUM)
    return SeriesPoint(**{**fields, **update, "checks": ordered_checks(checks)})


def _high_or_low(point: _Drafted, history: UsageHistory, parameters: VeeParameters) -> list[Check]:
    # V11 on reads a day or more apart; hourly use is judged on daily buckets by the alarms instead.
    if point.status is not ValidationStatus.ACTUAL or point.previous_at is None or point.consumption is None or (
            point.at - point.previous_at < DAY):
        return []
    window_start = point.previous_at - parameters.adu_window
    adu = history.average_daily_use(point.previous_at, since=window_start)
    if adu is None or history.covered_days(point.previous_at, window_start) < in_days(parameters.adu_min_history):
        return []
    verdict = high_or_low(point.consumption, days_between(point.previous_at, point.at), adu, parameters)
    return [verdict] if verdict else []


def _same_register_run(before: SeriesPoint, point: _Drafted) -> bool:
    # Time-of-use deltas only between two actual reads of one device whose total moved forward normally.
    actual = before.status is ValidationStatus.ACTUAL and point.status is ValidationStatus.ACTUAL
    return actual and before.meter_id == point.meter_id and not {Check.ROLLOVER, Check.REVERSE_FLOW} & set(
        point.checks)


def _revalidate_estimates(points: list[SeriesPoint], context: MeterContext,
                          timeline: RuleTimeline) -> tuple[SeriesPoint, ...]:
    """V17: V12 run again with the estimates in; a gap estimate that is the day's spike is flagged [CA-VEE].

    Estimates standing in for a failed read are under review already and are not flagged twice.
    """
    if context.grid.daily:
        return tuple(points)
    by_day: dict[date, list[int]] = defaultdict(list)
    for index, p in enumerate(points):
        if p.billable:
            by_day[local_date(p.at, context.zone)].append(index)
    revised = list(points)
    for indexes in by_day.values():
        ranked = sorted(indexes, key=lambda i: (-(points[i].consumption or 0), points[i].at))
        if len(ranked) < 3:
            continue
        top, third = points[ranked[0]], points[ranked[2]].consumption or Decimal(0)
        pure_estimate = top.status is ValidationStatus.ESTIMATED and not any(
            SEVERITY[c] is Severity.ISSUE for c in top.checks)
        if pure_estimate and third > 0 and (top.consumption or 0) / third > timeline.parameters(top.at).spike_ratio:
            revised[ranked[0]] = top.model_copy(
                update={"checks": ordered_checks((*top.checks, Check.IMPLAUSIBLE_ESTIMATE))})
    return tuple(revised)
