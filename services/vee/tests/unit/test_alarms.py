"""Alarm episodes: device status alarms, silence, and raising once / clearing once as data arrives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from amiflow_schemas.events.alarms import AlarmCleared, AlarmRaised, AlarmType
from amiflow_schemas.events.devices import DeviceAlarmFlag, DeviceStatusReported
from amiflow_schemas.primitives import ValveState
from vee.core.device_alarms import DeviceStatus, device_status
from vee.core.engine import apply_device_status, check_silence
from vee.core.episodes import AlarmClearedFact, AlarmRaisedFact
from vee.core.events import alarm_event

H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _status(m, at, now=None, **fields):
    outcome = apply_device_status(m.state, m.context, m.rules, DeviceStatus(reported_at=at, **fields), now or at)
    m.state = outcome.state
    m.outcomes.append(outcome)
    return outcome


def test_a_device_alarm_is_raised_once_and_cleared_when_the_flag_goes(meter):
    m = meter()
    first = _status(m, T0, alarms=(DeviceAlarmFlag.MAGNETIC_TAMPER, DeviceAlarmFlag.EMPTY_PIPE))
    assert {a.condition.kind for a in first.alarms} == {AlarmType.TAMPER, AlarmType.DRY_PIPE}
    assert _status(m, T0 + H, alarms=(DeviceAlarmFlag.MAGNETIC_TAMPER, DeviceAlarmFlag.EMPTY_PIPE)).alarms == ()
    cleared = _status(m, T0 + 2 * H, alarms=(DeviceAlarmFlag.EMPTY_PIPE,))
    [tamper] = m.raised(AlarmType.TAMPER)
    assert [(c.alarm_id, c.cleared_at) for c in cleared.alarms] == [(tamper.alarm_id, T0 + 2 * H)]


def test_an_older_status_report_than_the_last_is_ignored(meter):
    m = meter()
    _status(m, T0 + H, valve=ValveState.ABNORMAL)
    stale = _status(m, T0, valve=ValveState.OPEN)
    assert stale.alarms == () and m.cleared(AlarmType.VALVE_ABNORMAL) == []


def test_battery_clock_drift_and_reverse_flow_from_a_status_report(meter):
    report = DeviceStatusReported.model_validate({
        "meter_id": "M-1", "utility": "water", "reported_at": T0, "valve": "open", "relay": None,
        "battery": {"level": "low", "voltage_v": "3.1", "remaining_percent": 8}, "alarms": ["reverse_flow"],
        "status_word_hex": None, "gateway_id": None, "clock_drift_s": 1200})
    m = meter()
    outcome = apply_device_status(m.state, m.context, m.rules, device_status(report), T0)
    kinds = {a.condition.kind: a.condition for a in outcome.alarms}
    assert set(kinds) == {AlarmType.BATTERY_LOW, AlarmType.CLOCK_DRIFT, AlarmType.BACKFLOW}
    assert (kinds[AlarmType.CLOCK_DRIFT].observed, kinds[AlarmType.CLOCK_DRIFT].threshold) == (1200, 900)
    assert {a.condition.kind for a in apply_device_status(
        m.state, m.context, m.rules, DeviceStatus(reported_at=T0, clock_drift_s=600), T0).alarms} == set()


def test_no_communication_is_raised_past_the_limit_and_cleared_by_the_next_reading(meter):
    m = meter()
    m.read(T0, "1.0", now=T0)
    assert check_silence(m.state, m.context, m.rules, T0 + 47 * H).alarms == ()
    silent = check_silence(m.state, m.context, m.rules, T0 + 49 * H)
    [raised] = silent.alarms
    assert (raised.condition.kind, raised.condition.started_at) == (AlarmType.NO_COMMUNICATION, T0 + 48 * H)
    assert check_silence(silent.state, m.context, m.rules, T0 + 50 * H).alarms == ()
    m.state = silent.state
    heard = m.read(T0 + 50 * H, "2.0", now=T0 + 50 * H)
    assert [(a.alarm_id, type(a)) for a in heard.alarms] == [(raised.alarm_id, AlarmClearedFact)]
    event = alarm_event(raised, m.context.utility)
    assert (event.alarm_type, event.observed_value, event.threshold_value) == (
        AlarmType.NO_COMMUNICATION, Decimal(49 * 3600), Decimal(48 * 3600))


def test_the_same_data_again_raises_nothing_twice(meter):
    m = meter(timedelta(minutes=5), q3_m3_per_h=Decimal("2.5"))
    for step in range(8):
        m.read(T0 + step * 5 * timedelta(minutes=1), Decimal("5.000") + Decimal("0.025") * step)
    assert len(m.raised(AlarmType.BURST)) == 1
    m.read(T0 + 5 * timedelta(minutes=1), "5.025", salt="redelivered by another gateway")
    assert len(m.raised(AlarmType.BURST)) == 1


def test_late_data_that_disproves_an_episode_clears_it(meter):
    m = meter(D)
    for day in range(-7, 1):
        m.read(T0 + day * D, Decimal(500 + 4 * (day + 7)))
    m.estimate(until=T0 + 6 * D, now=T0 + 6 * D + H)
    [visit] = m.raised(AlarmType.PROLONGED_ESTIMATION)
    late = m.read(T0 + 3 * D, "545", now=T0 + 7 * D)  # a backlog: the meter was read on day 3 after all
    cleared = {a.kind: a.alarm_id for a in late.alarms if isinstance(a, AlarmClearedFact)}
    assert cleared[AlarmType.PROLONGED_ESTIMATION] == visit.alarm_id
    assert AlarmType.NO_COMMUNICATION in cleared  # it was heard from again, too


def test_alarm_facts_map_onto_valid_alarm_events(meter):
    m = meter(dial_count=8, resolution="0.001")
    for hour, value in enumerate(["1000.000", "999.985", "1000.010"]):
        m.read(T0 + hour * H, value)
    events = [alarm_event(a, m.context.utility) for o in m.outcomes for a in o.alarms]
    raised = [e for e in events if isinstance(e, AlarmRaised)]
    cleared = [e for e in events if isinstance(e, AlarmCleared)]
    assert [(e.alarm_type, e.value_unit.value, e.observed_value) for e in raised] == [
        (AlarmType.BACKFLOW, "m3", Decimal("0.015"))]
    assert [e.alarm_id for e in cleared] == [raised[0].alarm_id]
    assert all(isinstance(a, AlarmRaisedFact | AlarmClearedFact) for o in m.outcomes for a in o.alarms)
