"""Automation rules as data: a burst closes the valve, an overload trips the relay, or an operator is asked."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.alarms import AlarmRaised, AlarmSeverity, AlarmSubject, AlarmType
from amiflow_schemas.events.commands import (
    CommandKind,
    CommandOrigin,
    CommandPriority,
    CommandReason,
    ValveAction,
    ValveCommandIssued,
)
from amiflow_schemas.primitives import Utility
from commands.core.automation import (
    AlarmTrigger,
    AutomationRule,
    Observation,
    RuleMode,
    ThresholdTrigger,
    accept_proposal,
    decide_on_alarm,
    decide_on_observation,
)
from commands.core.intake import Accepted
from commands.core.model import Refusal, RefusalCode
from pydantic import ValidationError

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 7, 1, 3, 0, tzinfo=SH)
ALARM_ID = UUID("0b5c2f8e-2a35-4d43-9d0c-4a6f0f5a7a01")
BURST_CLOSE = AutomationRule(rule_id="burst-close@2026-07", trigger=AlarmTrigger(alarm_type=AlarmType.BURST),
                             action=CommandKind.VALVE_CLOSE, mode=RuleMode.EXECUTE,
                             reason=CommandReason.LEAK_PROTECTION)
OVERLOAD_TRIP = AutomationRule(
    rule_id="overload-trip", trigger=ThresholdTrigger(quantity="active_power_kw", above=Decimal("8.8"),
                                                      utility=Utility.ELECTRICITY),
    action=CommandKind.RELAY_TRIP, mode=RuleMode.EXECUTE, reason=CommandReason.OVERLOAD)


def _alarm(meter_id: str, alarm_type: AlarmType = AlarmType.BURST, severity: AlarmSeverity = AlarmSeverity.CRITICAL,
           subject: AlarmSubject = AlarmSubject.METER) -> AlarmRaised:
    return AlarmRaised(alarm_id=ALARM_ID, alarm_type=alarm_type, severity=severity, subject=subject,
                       subject_id=meter_id, utility=Utility.WATER, rule_id="burst-30min@2026-01", detected_at=T,
                       window_start=None, window_end=None, observed_value=None, threshold_value=None,
                       value_unit=None, description="flow above 10 % of Q3 for 30 minutes")


def test_a_burst_alarm_closes_the_valve_at_once_and_the_command_names_the_rule(desk):
    decision = decide_on_alarm([BURST_CLOSE], _alarm(desk.water.device_id), T)

    [requested] = decision.requests
    assert (requested.kind, requested.origin, requested.rule_id) == (
        CommandKind.VALVE_CLOSE, CommandOrigin.AUTOMATION, "burst-close@2026-07")
    assert requested.priority is CommandPriority.URGENT and requested.reason is CommandReason.LEAK_PROTECTION
    assert requested.note is not None and requested.note.startswith("rule burst-close@2026-07: burst alarm")
    assert isinstance(desk.submit(requested, T), Accepted)
    desk.tick(T)  # 03:00: quiet windows hold only the balance policy's cut-offs
    assert [e.action for e in desk.events(ValveCommandIssued)] == [ValveAction.CLOSE]


def test_deciding_twice_on_one_alarm_names_the_same_command():
    first = decide_on_alarm([BURST_CLOSE], _alarm("WM-1"), T)
    again = decide_on_alarm([BURST_CLOSE], _alarm("WM-1"), T + timedelta(seconds=5))
    assert first.requests[0].command_id == again.requests[0].command_id


def test_a_proposal_rule_only_proposes_and_the_operators_acceptance_names_both_rule_and_operator(desk):
    propose = BURST_CLOSE.model_copy(update={"rule_id": "burst-ask", "mode": RuleMode.PROPOSE})
    decision = decide_on_alarm([propose], _alarm(desk.water.device_id), T)

    assert decision.requests == ()
    [proposal] = decision.proposals
    assert (proposal.rule_id, proposal.kind, proposal.cause_id) == ("burst-ask", CommandKind.VALVE_CLOSE, ALARM_ID)
    requested = accept_proposal(proposal, "op-3", "confirmed with the caretaker", T + timedelta(minutes=4),
                                timedelta(hours=1))
    assert not isinstance(requested, Refusal)
    assert (requested.requested_by, requested.note, requested.rule_id) == (
        "op-3", "confirmed with the caretaker", "burst-ask")
    accepted = desk.submit(requested, T + timedelta(minutes=4))
    assert isinstance(accepted, Accepted)
    twice = accept_proposal(proposal, "op-4", "me too", T + timedelta(minutes=5), timedelta(hours=1))
    assert not isinstance(twice, Refusal)
    answer = desk.submit(twice, T + timedelta(minutes=5), known=accepted.command)
    assert isinstance(answer, Accepted) and answer.duplicate


def test_accepting_a_lapsed_proposal_is_refused():
    propose = BURST_CLOSE.model_copy(update={"mode": RuleMode.PROPOSE})
    [proposal] = decide_on_alarm([propose], _alarm("WM-1"), T).proposals
    refused = accept_proposal(proposal, "op-3", "late", proposal.expires_at, timedelta(hours=1))
    assert isinstance(refused, Refusal) and refused.code is RefusalCode.PROPOSAL_EXPIRED


@pytest.mark.parametrize("alarm", [
    _alarm("WM-1", alarm_type=AlarmType.CONTINUOUS_FLOW),
    _alarm("DMA-7", subject=AlarmSubject.DISTRICT),
])
def test_other_alarms_and_district_alarms_trigger_nothing(alarm):
    decision = decide_on_alarm([BURST_CLOSE], alarm, T)
    assert decision.requests == () and decision.proposals == ()


def test_a_rule_fires_only_at_or_above_its_severity_and_only_when_enabled():
    serious = BURST_CLOSE.model_copy(update={"trigger": AlarmTrigger(alarm_type=AlarmType.BURST,
                                                                     min_severity=AlarmSeverity.CRITICAL)})
    assert decide_on_alarm([serious], _alarm("WM-1", severity=AlarmSeverity.WARNING), T).requests == ()
    assert len(decide_on_alarm([serious], _alarm("WM-1"), T).requests) == 1
    off = BURST_CLOSE.model_copy(update={"enabled": False})
    assert decide_on_alarm([off], _alarm("WM-1"), T).requests == ()


def test_an_overload_above_the_threshold_trips_the_relay_naming_the_rule():
    def seen(kw: str) -> Observation:
        return Observation(uuid4(), "EM-1", Utility.ELECTRICITY, "active_power_kw", Decimal(kw), T)

    assert decide_on_observation([OVERLOAD_TRIP, BURST_CLOSE], seen("8.8"), T).requests == ()
    [requested] = decide_on_observation([OVERLOAD_TRIP, BURST_CLOSE], seen("9.1"), T).requests
    assert (requested.kind, requested.rule_id, requested.reason) == (
        CommandKind.RELAY_TRIP, "overload-trip", CommandReason.OVERLOAD)


def test_a_rule_document_with_an_unknown_key_is_refused():
    document = BURST_CLOSE.model_dump(mode="json") | {"sevrity": "critical"}
    with pytest.raises(ValidationError, match="sevrity"):
        AutomationRule.model_validate(document)
    assert AutomationRule.model_validate(BURST_CLOSE.model_dump(mode="json")) == BURST_CLOSE
