"""Consumption alarms of one meter, as episodes found in its validated series and aggregates (vee.md §5).

Every rule reads its samples as on, off or unknown. An alarm is raised once enough consecutive
samples are on, and ends at the first sample that is off. Unknown samples (estimated, missing or
incomplete data) neither raise nor clear anything [AQC-LEAK]; they only restart the count.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from amiflow_schemas.events.alarms import AlarmSeverity, AlarmType, MeasureUnit
from amiflow_schemas.events.readings import ValidationStatus

from vee.core.aggregation import Bucket
from vee.core.checks import high_or_low
from vee.core.context import MeterContext
from vee.core.episodes import Condition
from vee.core.grid import HOUR, in_days, local_date, seconds
from vee.core.model import Check, SeriesPoint
from vee.core.rules import RuleTimeline


@dataclass(frozen=True, slots=True)
class Sample:
    """One bucket or interval as an alarm rule reads it."""

    start: datetime
    end: datetime
    on: bool | None  # None: unknown
    value: Decimal


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive on samples, from the first one until an off sample (or still open)."""

    started_at: datetime
    detected_at: datetime
    ended_at: datetime | None
    samples: tuple[Sample, ...]  # those that made it enough


def runs(samples: Sequence[Sample], enough: Callable[[Sequence[Sample]], bool]) -> list[Run]:
    """Episodes of on samples; a gap in time or an unknown sample restarts the count."""
    found, run, current = [], list[Sample](), None
    for sample in samples:
        if run and sample.start != run[-1].end:
            run = []
        if sample.on is None:
            run = []
        elif sample.on:
            run.append(sample)
            if current is None and enough(run):
                current = Run(run[0].start, sample.end, None, tuple(run))
        else:
            run = []
            if current is not None:
                found.append(Run(current.started_at, current.detected_at, sample.end, current.samples))
                current = None
    return [*found, current] if current is not None else found


def immediately(run: Sequence[Sample]) -> bool:
    """Raise on the first on sample."""
    return bool(run)


def _condition(kind: AlarmType, run: Run, severity: AlarmSeverity, observed: Decimal | None,
               threshold: Decimal | None, unit: MeasureUnit | None, description: str,
               timeline: RuleTimeline) -> Condition:
    return Condition(kind, run.started_at, run.detected_at, run.ended_at, severity, observed, threshold, unit,
                     description, timeline.at(run.detected_at).rule_id, (run.started_at, run.detected_at))


def continuous_flow(hourly: Sequence[Bucket], timeline: RuleTimeline) -> list[Condition]:
    """Leak: use in every one of 24 hours; its rate is the lowest hour [AQC-LEAK][MIVA]."""
    def sample(b: Bucket) -> Sample:
        limit = timeline.parameters(b.start).leak_min_hourly
        return Sample(b.start, b.end, b.consumption >= limit if b.all_actual else None, b.consumption)

    found = []
    for run in runs([sample(b) for b in hourly], lambda r: len(r) >= timeline.parameters(r[-1].end).leak_hours):
        hours = timeline.parameters(run.detected_at).leak_hours
        rate = min(s.value for s in run.samples[-hours:])
        total = sum((s.value for s in run.samples[-hours:]), Decimal(0))
        found.append(_condition(
            AlarmType.CONTINUOUS_FLOW, run, AlarmSeverity.WARNING, rate,
            timeline.parameters(run.detected_at).leak_min_hourly, MeasureUnit.M3_PER_HOUR,
            f"flow in each of {hours} hours; leak rate {rate} m3/h = {rate * 24} m3/day, "
            f"{(rate * hours / total * 100).quantize(Decimal(1)) if total else 0} % of the period's use",
            timeline))
    return found


def burst(points: Sequence[SeriesPoint], context: MeterContext, timeline: RuleTimeline) -> list[Condition]:
    """Burst: flow above a share of Q3 for a continuous 30 minutes [KAM-BURST]."""
    if context.q3_m3_per_h is None:
        return []
    q3 = context.q3_m3_per_h
    samples = []
    for p in points:
        if p.previous_at is None or p.consumption is None:
            continue
        rate = p.consumption * seconds(HOUR) / seconds(p.at - p.previous_at)
        limit = timeline.parameters(p.at).burst_q3_share * q3
        samples.append(Sample(p.previous_at, p.at, rate > limit if p.status is ValidationStatus.ACTUAL else None,
                              rate))

    def enough(run: Sequence[Sample]) -> bool:
        return run[-1].end - run[0].start >= timeline.parameters(run[-1].end).burst_duration

    return [_condition(AlarmType.BURST, run, AlarmSeverity.CRITICAL, min(s.value for s in run.samples),
                       timeline.parameters(run.detected_at).burst_q3_share * q3, MeasureUnit.M3_PER_HOUR,
                       "flow above the burst share of Q3 for the burst duration", timeline)
            for run in runs(samples, enough)]


def stopped_meter(daily: Sequence[Bucket], points: Sequence[SeriesPoint], context: MeterContext,
                  timeline: RuleTimeline) -> list[Condition]:
    """V9: N consecutive zero days; a day with an outage is an outage exception instead [ORA-ZERO]."""
    outage_days = {local_date(p.at, context.zone) for p in points if Check.OUTAGE in p.checks}

    def sample(b: Bucket) -> Sample:
        known = b.all_actual and local_date(b.start, context.zone) not in outage_days
        return Sample(b.start, b.end, b.consumption == 0 if known else None, b.consumption)

    def enough(run: Sequence[Sample]) -> bool:
        return len(run) >= timeline.parameters(run[-1].end).stopped_meter_days

    return [_condition(AlarmType.NO_CONSUMPTION, run, AlarmSeverity.WARNING, Decimal(len(run.samples)),
                       Decimal(timeline.parameters(run.detected_at).stopped_meter_days), MeasureUnit.DAYS,
                       "the register has not moved: stopped meter or vacancy", timeline)
            for run in runs([sample(b) for b in daily], enough)]


def _ratio_sample(day: Bucket, earlier: Sequence[Bucket], check: Check, timeline: RuleTimeline) -> Sample:
    # ``earlier``: the days before ``day``, in order; only the window's complete, all-actual ones count.
    parameters = timeline.parameters(day.start)
    first = bisect.bisect_left(earlier, day.start - parameters.adu_window, key=lambda b: b.start)
    history = [b for b in earlier[first:] if b.all_actual]
    if not day.all_actual or len(history) < in_days(parameters.adu_min_history):
        return Sample(day.start, day.end, None, Decimal(0))
    adu = sum((b.consumption for b in history), Decimal(0)) / len(history)
    ratio = day.consumption / adu * 100 if adu else Decimal(0)
    return Sample(day.start, day.end, high_or_low(day.consumption, Decimal(1), adu, parameters) is check, ratio)


def high_low(daily: Sequence[Bucket], timeline: RuleTimeline) -> list[Condition]:
    """V11 per local day against the ADU of the days before it [ORA-HL][CUR-THR]."""
    found = []
    for kind, check in ((AlarmType.HIGH_CONSUMPTION, Check.HIGH), (AlarmType.LOW_CONSUMPTION, Check.LOW)):
        samples = [_ratio_sample(day, daily[:i], check, timeline) for i, day in enumerate(daily)]
        for run in runs(samples, immediately):
            parameters = timeline.parameters(run.detected_at)
            limit = parameters.high_ratio if check is Check.HIGH else parameters.low_ratio
            found.append(_condition(kind, run, AlarmSeverity.INFO, run.samples[-1].value.quantize(Decimal(1)),
                                    limit * 100, MeasureUnit.PERCENT,
                                    f"daily use {check.value.split('_')[1]} against the average daily use", timeline))
    return found
