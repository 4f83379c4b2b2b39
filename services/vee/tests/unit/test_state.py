"""State and configuration persist as JSON; facts become valid events; the state is idempotent and prunable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from amiflow_schemas.events.readings import ReadingCorrected, ReadingReceived, ReadingValidated, ValidationStatus
from amiflow_schemas.events.registry import MeterState
from amiflow_schemas.examples import example_payloads
from pydantic import ValidationError
from vee.core.context import MeterContext, context_from_registry
from vee.core.engine import prune
from vee.core.events import reading_event
from vee.core.model import Check, MeterSeries, ReadFlag, raw_read
from vee.core.rules import RuleSet, RuleVersion, VeeParameters

H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _t04(meter):
    m = meter(D, dial_count=5)
    for day in range(8):
        m.read(T0 + day * D, Decimal(100 + 10 * day), flags=(ReadFlag.POWER_FAILURE,) if day == 2 else ())
    m.estimate(until=T0 + 9 * D, now=T0 + 14 * D)
    m.read(T0 + 10 * D, "203.0")
    m.edit(T0 + 10 * D, "203.5", edited_at=T0 + 15 * D)
    return m


def test_state_context_and_rules_survive_a_json_round_trip(meter):
    m = _t04(meter)
    stored = json.dumps(m.state.model_dump(mode="json"))
    assert MeterSeries.model_validate(json.loads(stored)) == m.state
    assert MeterContext.model_validate_json(m.context.model_dump_json()) == m.context
    rules = RuleSet(tenant_id="demo", versions=(RuleVersion(rule_id="r@1", effective_from=T0,
                                                            parameters=VeeParameters(spike_ratio=Decimal("1.5"))),))
    assert RuleSet.model_validate_json(rules.model_dump_json()) == rules
    with pytest.raises(ValidationError):
        VeeParameters(spike_ratio=1.5)  # never a float


def test_a_redelivered_reading_changes_nothing(meter):
    m = meter()
    m.read(T0, "1.0")
    first = m.read(T0 + H, "2.0")
    again = m.read(T0 + H, "2.0")
    assert first.points and (again.points, again.alarms, again.buckets) == ((), (), ())
    assert len(m.state.reads) == 2


def test_every_published_fact_is_a_valid_validated_or_corrected_reading(meter):
    m = _t04(meter)
    events = [reading_event(p, m.context) for o in m.outcomes for p in o.points]
    corrected = [e for e in events if isinstance(e, ReadingCorrected)]
    assert len(events) == 11 + len(corrected)
    assert {(e.measured_at, e.reading_version, e.correction_reason.value) for e in corrected} == {
        (T0 + 8 * D, 2, "re_estimated"), (T0 + 9 * D, 2, "re_estimated"), (T0 + 10 * D, 2, "manual_edit"),
        (T0 + 8 * D, 3, "re_estimated"), (T0 + 9 * D, 3, "re_estimated")}  # the edit re-spreads the gap
    [edited] = [e for e in corrected if e.measured_at == T0 + 10 * D]
    assert (edited.status, edited.edit.edited_by, edited.consumption) == (ValidationStatus.EDITED, "op-1",
                                                                          Decimal("11.166667"))  # 203.5 - 192.333333
    assert all(isinstance(e, ReadingValidated) for e in events if e not in corrected)


def test_a_failed_point_is_published_without_consumption(meter):
    m = meter(D, dial_count=5)
    for day, value in enumerate(["45210", "45250", "45190"]):
        m.read(T0 + day * D, value)
    [failed] = [p for o in m.outcomes for p in o.points if p.point.status is ValidationStatus.FAILED]
    event = reading_event(failed, m.context)
    assert (event.status, event.consumption, event.registers[0].value) == (
        ValidationStatus.FAILED, None, Decimal(45190))


def test_a_reading_received_event_becomes_a_raw_read_with_its_device_flags():
    received: ReadingReceived = example_payloads()["ReadingReceived"]
    event_id = uuid4()
    read = raw_read(received, event_id, flags=["power_failure", "magnetic_tamper"])
    assert (read.source_event_id, read.meter_id, read.registers) == (event_id, received.meter_id, received.registers)
    assert read.flags == (ReadFlag.POWER_FAILURE,)


def test_the_context_of_a_replaced_meter_chains_both_devices():
    examples = example_payloads()
    replaced = examples["MeterReplaced"]
    successor: MeterState = examples["MeterDefined"].meter.model_copy(update={
        "meter_id": replaced.replacement.new_meter_id, "installed_at": replaced.replacement.installed_at,
        "installation_reading": replaced.replacement.installation_reading,
        "replaces_meter_id": replaced.meter.meter_id})
    context = context_from_registry(successor, tenant_id="demo", time_zone="Asia/Shanghai", read_interval=H,
                                    predecessors=[replaced.meter])
    old, new = context.devices
    assert (context.series_id, old.removal_reading, new.installation_reading) == (
        replaced.meter.meter_id, replaced.replacement.removal_reading, replaced.replacement.installation_reading)
    assert context.inactive == ()


def test_pruning_settles_old_slots_and_refuses_reads_for_them(meter):
    m = meter(D)
    for day in range(80):
        m.read(T0 + day * D, Decimal(1000 + day))
    m.state = prune(m.state, m.context, m.rules, T0 + 70 * D)
    assert min(p.point.at for p in m.state.published) == T0 + 70 * D
    assert len(m.state.reads) == 1 + 80 - (70 - 30)  # the ADU window, plus the read that opens it
    late = m.read(T0 + 20 * D, "1020", salt="late")
    assert [r.checks for r in late.rejected] == [(Check.SETTLED,)]
    later = m.read(T0 + 80 * D, "1080")
    assert [(p.point.at, p.point.consumption) for p in later.points] == [(T0 + 80 * D, 1)]
