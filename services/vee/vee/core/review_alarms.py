"""Alarms from the checks points carry (V3, V7, V10, V12, backflow) and from prolonged estimation (V14).

``series_conditions`` gathers every alarm rule that reads one meter's series; the engine reconciles
their episodes with those already raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from amiflow_schemas.events.alarms import AlarmSeverity, AlarmType, MeasureUnit
from amiflow_schemas.events.readings import ValidationStatus
from amiflow_schemas.primitives import Unit, Utility

from vee.core.aggregation import Bucket
from vee.core.context import MeterContext
from vee.core.episodes import Condition
from vee.core.grid import in_days
from vee.core.meter_alarms import Run, Sample, burst, continuous_flow, high_low, immediately, runs, stopped_meter
from vee.core.model import Check, SeriesPoint
from vee.core.registers import Backflow, backflow_class
from vee.core.rules import RuleTimeline

_FLAGGED = (
    (Check.NEGATIVE, AlarmType.NEGATIVE_CONSUMPTION, "the register went down: misread, estimated instead"),
    (Check.SPIKE, AlarmType.SPIKE, "one interval far above the day's others, estimated instead"),
    (Check.INACTIVE_USAGE, AlarmType.USAGE_ON_INACTIVE_METER, "consumption while the service is off; not billed"),
    (Check.CLOCK_INVALID, AlarmType.CLOCK_DRIFT, "the meter's clock is off by more than the tolerance"),
    (Check.REVERSE_FLOW, AlarmType.BACKFLOW, "the register ran back: reverse flow, not billed as negative use"),
)
_SETTLED = (ValidationStatus.ACTUAL, ValidationStatus.EDITED)
_MEASURE = {Unit.M3: MeasureUnit.M3, Unit.KWH: MeasureUnit.KWH, Unit.GJ: MeasureUnit.GJ}


def _flag_sample(point: SeriesPoint, check: Check) -> Sample:
    on = True if check in point.checks else (False if point.status in _SETTLED else None)
    value = point.reverse_volume if check is Check.REVERSE_FLOW else point.consumption
    return Sample(point.previous_at or point.at, point.at, on, value or Decimal(0))


def _backflow_severity(run: Run, point_by_end: dict[datetime, SeriesPoint], context: MeterContext,
                       timeline: RuleTimeline) -> AlarmSeverity:
    worst = Backflow.MINOR
    for sample in run.samples:
        point = point_by_end[sample.end]
        device = context.device(point.meter_id) or context.devices[0]
        dropped = (point.reverse_volume or Decimal(0)) / device.multiplier
        if backflow_class(dropped, device, timeline.parameters(point.at)) is Backflow.MAJOR:
            worst = Backflow.MAJOR
    return AlarmSeverity.CRITICAL if worst is Backflow.MAJOR else AlarmSeverity.WARNING


def flagged(points: Sequence[SeriesPoint], context: MeterContext, timeline: RuleTimeline) -> list[Condition]:
    """An episode per run of points carrying a check; the next settled point without it ends it."""
    found = []
    by_end = {p.at: p for p in points}
    unit = _MEASURE.get(context.unit)
    carried = {check for p in points for check in p.checks}
    for check, kind, description in _FLAGGED:
        if check not in carried:  # no sample would be on: no run
            continue
        for run in runs([_flag_sample(p, check) for p in points], immediately):
            severity = _backflow_severity(run, by_end, context, timeline) if kind is AlarmType.BACKFLOW \
                else AlarmSeverity.WARNING
            observed = sum((s.value for s in run.samples), Decimal(0)) if unit else None
            found.append(Condition(kind, run.samples[0].end, run.detected_at, run.ended_at, severity, observed, None,
                                   unit, description, timeline.at(run.detected_at).rule_id))
    return found


def prolonged_estimation(points: Sequence[SeriesPoint], timeline: RuleTimeline) -> list[Condition]:
    """V14: estimated past the last actual plus the allowed days: a field visit [ORA-PROL]."""
    samples, last_actual = [], None
    for point in points:
        if point.status in _SETTLED:
            last_actual = point.at
            samples.append(Sample(point.at, point.at, False, Decimal(0)))
        elif last_actual is not None and point.status is ValidationStatus.ESTIMATED:
            late = point.at - last_actual > timeline.parameters(point.at).prolonged_estimation
            samples.append(Sample(point.at, point.at, late or None, in_days(point.at - last_actual)))
    return [Condition(AlarmType.PROLONGED_ESTIMATION, run.started_at, run.detected_at, run.ended_at,
                      AlarmSeverity.WARNING, run.samples[0].value,
                      in_days(timeline.parameters(run.detected_at).prolonged_estimation), MeasureUnit.DAYS,
                      "estimated for too long since the last actual read: field visit",
                      timeline.at(run.detected_at).rule_id)
            for run in runs(samples, immediately)]


def series_conditions(points: Sequence[SeriesPoint], hourly: Sequence[Bucket], daily: Sequence[Bucket],
                      context: MeterContext, timeline: RuleTimeline) -> list[Condition]:
    """Every condition one meter's series shows."""
    found = [*flagged(points, context, timeline), *prolonged_estimation(points, timeline),
             *stopped_meter(daily, points, context, timeline), *high_low(daily, timeline)]
    if context.utility is Utility.WATER and not context.continuous_flow_expected:
        found += continuous_flow(hourly, timeline)
    if context.utility is Utility.WATER:
        found += burst(points, context, timeline)
    return found
