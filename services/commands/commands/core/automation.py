"""A tenant's automation rules as data: an alarm or a threshold triggers a command, or only proposes one.

Every automatic command and proposal names the rule that made it (rule_id). A proposal becomes
a command only when an operator accepts it, and then it records that operator and their reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from amiflow_schemas.events.alarms import AlarmRaised, AlarmSeverity, AlarmSubject, AlarmType
from amiflow_schemas.events.commands import (
    CommandKind,
    CommandOrigin,
    CommandPriority,
    CommandProposed,
    CommandReason,
    CommandRequested,
)
from amiflow_schemas.primitives import Identifier, Utility
from pydantic import Field, model_validator

from commands.core.lifecycle import SERVICE
from commands.core.model import Configuration, Refusal, RefusalCode, derived_command_id

_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(AlarmSeverity)}


class RuleMode(StrEnum):
    """Whether a rule acts itself or asks an operator first."""

    EXECUTE = "execute"
    PROPOSE = "propose"


class AlarmTrigger(Configuration):
    """Fires on an alarm of a type, at or above a severity, on a meter."""

    type: Literal["alarm"] = "alarm"
    alarm_type: AlarmType
    min_severity: AlarmSeverity = AlarmSeverity.INFO
    utility: Utility | None = None  # None: any


class ThresholdTrigger(Configuration):
    """Fires when an observed quantity of a device goes above a limit (e.g. active power: overload)."""

    type: Literal["threshold"] = "threshold"
    quantity: Identifier  # as the observation names it, e.g. "active_power_kw"
    above: Decimal
    utility: Utility | None = None


class AutomationRule(Configuration):
    """When the trigger fires on a device, request (or propose) one command on that device."""

    rule_id: Identifier
    trigger: Annotated[AlarmTrigger | ThresholdTrigger, Field(discriminator="type")]
    action: CommandKind
    mode: RuleMode
    reason: CommandReason
    priority: CommandPriority = CommandPriority.URGENT
    enabled: bool = True
    ttl: timedelta = timedelta(hours=2)  # how long the command, or the proposal, stays open

    @model_validator(mode="after")
    def _positive_ttl(self) -> Self:
        if self.ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        if self.action is CommandKind.SET_PARAMETER:  # a rule names no parameter to write
            raise ValueError("an automation rule cannot set a parameter")
        return self


@dataclass(frozen=True)
class Observation:
    """A measured quantity of a device that threshold rules look at."""

    observation_id: UUID  # the event it came from
    device_id: str
    utility: Utility
    quantity: str
    value: Decimal
    observed_at: datetime


@dataclass(frozen=True)
class AutomationDecision:
    """The commands rules request at once, and the ones they only propose."""

    requests: tuple[CommandRequested, ...] = ()
    proposals: tuple[CommandProposed, ...] = ()


def decide_on_alarm(rules: Iterable[AutomationRule], alarm: AlarmRaised, now: datetime) -> AutomationDecision:
    """The commands and proposals of the rules an alarm on a meter triggers (a district alarm triggers none)."""
    if alarm.subject is not AlarmSubject.METER:
        return AutomationDecision()
    fired = [r for r in rules if r.enabled and isinstance(r.trigger, AlarmTrigger) and _fires_on(r.trigger, alarm)]
    why = f"{alarm.alarm_type.value} alarm ({alarm.severity.value}) on {alarm.subject_id}: {alarm.description}"
    return _decided(fired, alarm.subject_id, alarm.alarm_id, why, now)


def decide_on_observation(rules: Iterable[AutomationRule], observation: Observation,
                          now: datetime) -> AutomationDecision:
    """The commands and proposals of the threshold rules an observation goes above."""
    fired = [r for r in rules if r.enabled and isinstance(r.trigger, ThresholdTrigger)
             and _exceeds(r.trigger, observation)]
    why = f"{observation.quantity} {observation.value} on {observation.device_id}"
    return _decided(fired, observation.device_id, observation.observation_id, why, now)


def _fires_on(trigger: AlarmTrigger, alarm: AlarmRaised) -> bool:
    return (trigger.alarm_type is alarm.alarm_type and trigger.utility in (None, alarm.utility)
            and _SEVERITY_RANK[alarm.severity] >= _SEVERITY_RANK[trigger.min_severity])


def _exceeds(trigger: ThresholdTrigger, observation: Observation) -> bool:
    return (trigger.quantity == observation.quantity and trigger.utility in (None, observation.utility)
            and observation.value > trigger.above)


def _decided(fired: list[AutomationRule], device_id: str, cause_id: UUID, why: str,
             now: datetime) -> AutomationDecision:
    requests = tuple(_requested(r, device_id, cause_id, why, now) for r in fired if r.mode is RuleMode.EXECUTE)
    proposals = tuple(_proposed(r, device_id, cause_id, why, now) for r in fired if r.mode is RuleMode.PROPOSE)
    return AutomationDecision(requests, proposals)


def _requested(rule: AutomationRule, device_id: str, cause_id: UUID, why: str, now: datetime) -> CommandRequested:
    return CommandRequested(
        command_id=derived_command_id(cause_id, rule.rule_id, device_id), device_id=device_id, kind=rule.action,
        parameter=None, reason=rule.reason, origin=CommandOrigin.AUTOMATION, requested_by=SERVICE,
        note=f"rule {rule.rule_id}: {why}"[:2000], rule_id=rule.rule_id, account_id=None, operation_id=None,
        after_command_id=None, batch_id=None, idempotency_key=None, priority=rule.priority, requested_at=now,
        not_before=None, holds=(), expires_at=now + rule.ttl)


def _proposed(rule: AutomationRule, device_id: str, cause_id: UUID, why: str, now: datetime) -> CommandProposed:
    return CommandProposed(
        proposal_id=derived_command_id(cause_id, "proposal", rule.rule_id, device_id), rule_id=rule.rule_id,
        device_id=device_id, kind=rule.action, reason=rule.reason, priority=rule.priority, cause_id=cause_id,
        detail=f"rule {rule.rule_id}: {why}"[:2000], proposed_at=now, expires_at=now + rule.ttl)


def accept_proposal(proposal: CommandProposed, operator_id: str, why: str, now: datetime,
                    ttl: timedelta) -> CommandRequested | Refusal:
    """The command an operator's acceptance of a proposal requests; it names both the rule and the operator.

    Accepting the same proposal twice answers the first command: its idempotency key is the proposal's.
    """
    if now >= proposal.expires_at:
        return Refusal(RefusalCode.PROPOSAL_EXPIRED,
                       f"proposal {proposal.proposal_id} lapsed at {proposal.expires_at.isoformat()}")
    return CommandRequested(
        command_id=derived_command_id(proposal.proposal_id, "accepted"), device_id=proposal.device_id,
        kind=proposal.kind, parameter=None, reason=proposal.reason, origin=CommandOrigin.AUTOMATION,
        requested_by=operator_id, note=why, rule_id=proposal.rule_id, account_id=None, operation_id=None,
        after_command_id=None, batch_id=None, idempotency_key=f"proposal-{proposal.proposal_id}",
        priority=proposal.priority, requested_at=now, not_before=None, holds=(), expires_at=now + ttl)
