"""Alarms from what a device reports about itself, and from hearing nothing from it (vee.md §5).

A status report is the device's current state: each alarm bit that is set is an open condition, and
one that is no longer set ends it. A report older than the last one applied says nothing about now.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from amiflow_schemas.events.alarms import AlarmSeverity, AlarmType, MeasureUnit
from amiflow_schemas.events.devices import BatteryLevel, DeviceAlarmFlag, DeviceStatusReported
from amiflow_schemas.primitives import ValveState
from pydantic import AwareDatetime

from vee.core.episodes import Condition
from vee.core.grid import seconds
from vee.core.rules import RuleTimeline
from vee.core.stored import Stored

_FLAG_ALARMS = {
    DeviceAlarmFlag.MAGNETIC_TAMPER: (AlarmType.TAMPER, AlarmSeverity.CRITICAL, "magnetic tamper"),
    DeviceAlarmFlag.COVER_OPEN: (AlarmType.TAMPER, AlarmSeverity.CRITICAL, "cover opened"),
    DeviceAlarmFlag.EMPTY_PIPE: (AlarmType.DRY_PIPE, AlarmSeverity.WARNING, "the meter is not full of water"),
    DeviceAlarmFlag.REVERSE_FLOW: (AlarmType.BACKFLOW, AlarmSeverity.WARNING, "the device reports reverse flow"),
}


class DeviceStatus(Stored):
    """The parts of a DeviceStatusReported that alarms read."""

    reported_at: AwareDatetime
    valve: ValveState | None = None
    battery_low: bool = False
    alarms: tuple[DeviceAlarmFlag, ...] = ()
    clock_drift_s: int | None = None


def device_status(report: DeviceStatusReported) -> DeviceStatus:
    """The alarm-relevant status of a report."""
    return DeviceStatus(reported_at=report.reported_at, valve=report.valve,
                        battery_low=report.battery is not None and report.battery.level is BatteryLevel.LOW,
                        alarms=report.alarms, clock_drift_s=report.clock_drift_s)


def _open(kind: AlarmType, at: datetime, severity: AlarmSeverity, description: str, rule_id: str,
          observed: Decimal | None = None, threshold: Decimal | None = None,
          unit: MeasureUnit | None = None) -> Condition:
    return Condition(kind, at, at, None, severity, observed, threshold, unit, description, rule_id)


def device_conditions(status: DeviceStatus, timeline: RuleTimeline) -> list[Condition]:
    """The conditions a status report shows as open now."""
    at, rule_id = status.reported_at, timeline.at(status.reported_at).rule_id
    found: dict[AlarmType, Condition] = {}
    for flag in status.alarms:
        if flag in _FLAG_ALARMS:
            kind, severity, description = _FLAG_ALARMS[flag]
            found.setdefault(kind, _open(kind, at, severity, description, rule_id))
    if status.valve is ValveState.ABNORMAL:
        found[AlarmType.VALVE_ABNORMAL] = _open(AlarmType.VALVE_ABNORMAL, at, AlarmSeverity.CRITICAL,
                                                "the valve reports an abnormal position", rule_id)
    if status.battery_low:
        found[AlarmType.BATTERY_LOW] = _open(AlarmType.BATTERY_LOW, at, AlarmSeverity.WARNING, "battery low", rule_id)
    limit = timeline.parameters(at).clock_flag_limit
    if status.clock_drift_s is not None and abs(status.clock_drift_s) > seconds(limit):
        # Trilliant: beyond 15 minutes the clock is hard-set and an alarm raised [TRIL].
        found[AlarmType.CLOCK_DRIFT] = _open(AlarmType.CLOCK_DRIFT, at, AlarmSeverity.WARNING,
                                             "the meter's clock drifted beyond the tolerance: set it", rule_id,
                                             Decimal(status.clock_drift_s), seconds(limit), MeasureUnit.SECONDS)
    return list(found.values())


def silence_conditions(last_heard_at: datetime | None, now: datetime, timeline: RuleTimeline) -> list[Condition]:
    """No communication for longer than the limit: open since the limit passed."""
    if last_heard_at is None:
        return []
    limit: timedelta = timeline.parameters(now).silence_limit
    if now - last_heard_at <= limit:
        return []
    return [_open(AlarmType.NO_COMMUNICATION, last_heard_at + limit, AlarmSeverity.WARNING,
                  f"nothing heard from the meter since {last_heard_at.isoformat()}", timeline.at(now).rule_id,
                  seconds(now - last_heard_at), seconds(limit), MeasureUnit.SECONDS)]
