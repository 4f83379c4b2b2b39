"""The lifecycle of a device command: requested, scheduled, dispatched, acknowledged, confirmed, or it ends."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, NonNegativeInt, PositiveInt, model_validator

from amiflow_schemas.payload import EventPayload, PayloadPart
from amiflow_schemas.primitives import HexBytes, Identifier, RelayState, Text, ValveState


class ValveAction(StrEnum):
    """A valve command (CJ/T 188 DI A017 values 55, 99, AA, 77)."""

    OPEN = "open"
    CLOSE = "close"
    EXERCISE = "exercise"  # move and return, against seizing
    HALF_OPEN = "half_open"


class RelayAction(StrEnum):
    """A load-switch command (DL/T 645 control code 1C, N1 = 1A, 1B, 1C, 2A, 2B, 3A, 3B)."""

    TRIP = "trip"
    CLOSE_ALLOWED = "close_allowed"  # the customer presses the button to restore supply
    CLOSE_DIRECT = "close_direct"  # a later amendment; not every meter accepts it
    ALARM = "alarm"
    ALARM_RELEASE = "alarm_release"
    KEEP_POWER = "keep_power"  # protects supply (e.g. a hospital) against trips
    KEEP_POWER_RELEASE = "keep_power_release"


class CommandReason(StrEnum):
    """Why a command was issued."""

    BALANCE_DEPLETED = "balance_depleted"
    BALANCE_RESTORED = "balance_restored"
    OPERATOR = "operator"
    LEAK_PROTECTION = "leak_protection"
    MAINTENANCE = "maintenance"
    OVERLOAD = "overload"  # an automation rule on a load threshold
    ACCOUNT_OPENED = "account_opened"
    MOVE_OUT = "move_out"
    METER_REPLACEMENT = "meter_replacement"
    PARAMETER_DOWNLOAD = "parameter_download"


class CommandIssued(EventPayload):
    """The facts shared by valve and relay commands."""

    command_id: UUID
    device_id: Identifier
    reason: CommandReason
    requested_by: Identifier  # an operator id, or the service that decided (e.g. "commands")
    account_id: Identifier | None  # the prepaid account behind a cut-off or restore
    issued_at: AwareDatetime
    not_before: AwareDatetime | None  # a cut-off held back by policy (nights, weekends)
    expires_at: AwareDatetime

    @model_validator(mode="after")
    def _window(self) -> Self:
        start = self.not_before or self.issued_at
        if start < self.issued_at or self.expires_at <= start:
            raise ValueError("need issued_at <= not_before < expires_at")
        return self


class ValveCommandIssued(CommandIssued):
    """Move a water, gas or heat meter's valve."""

    EVENT_TYPE: ClassVar[str] = "ValveCommandIssued"
    EVENT_VERSION: ClassVar[int] = 1

    action: ValveAction


class RelayCommandIssued(CommandIssued):
    """Switch an electricity meter's load relay."""

    EVENT_TYPE: ClassVar[str] = "RelayCommandIssued"
    EVENT_VERSION: ClassVar[int] = 1

    action: RelayAction


class CommandAcknowledged(EventPayload):
    """The device answered the command; not yet proof it acted (protocols.md §4 item 5)."""

    EVENT_TYPE: ClassVar[str] = "CommandAcknowledged"
    EVENT_VERSION: ClassVar[int] = 1

    command_id: UUID
    device_id: Identifier
    acknowledged_at: AwareDatetime
    attempt: PositiveInt
    gateway_id: Identifier | None
    reported_valve_state: ValveState | None  # CJ/T 188 replies carry the state after the move
    reply_hex: HexBytes | None


class CommandConfirmed(EventPayload):
    """A read-back showed the device in the commanded state."""

    EVENT_TYPE: ClassVar[str] = "CommandConfirmed"
    EVENT_VERSION: ClassVar[int] = 1

    command_id: UUID
    device_id: Identifier
    confirmed_at: AwareDatetime
    valve_state: ValveState | None
    relay_state: RelayState | None
    read_back_event_id: UUID | None  # the DeviceStatusReported that showed it, if any

    @model_validator(mode="after")
    def _one_state(self) -> Self:
        if (self.valve_state is None) == (self.relay_state is None):
            raise ValueError("exactly one of valve_state and relay_state is given")
        return self


class FailureReason(StrEnum):
    """Why a command failed."""

    DEVICE_REJECTED = "device_rejected"  # abnormal reply (e.g. DL/T 645 C=DC with ERR)
    UNAUTHORIZED = "unauthorized"  # wrong password, or an ESAM meter refusing plaintext
    NO_REPLY = "no_reply"
    READ_BACK_MISMATCH = "read_back_mismatch"  # acknowledged, but the state did not change
    NO_READ_BACK = "no_read_back"  # acknowledged, but no state was read back in time
    DEVICE_UNKNOWN = "device_unknown"
    TRANSPORT_ERROR = "transport_error"


class CommandFailed(EventPayload):
    """A command will not be retried: it failed for good."""

    EVENT_TYPE: ClassVar[str] = "CommandFailed"
    EVENT_VERSION: ClassVar[int] = 1

    command_id: UUID
    device_id: Identifier
    failed_at: AwareDatetime
    reason: FailureReason
    detail: Text
    attempts: NonNegativeInt  # 0 when it never reached the device
    device_error_code: Annotated[int, Field(ge=0, le=255)] | None  # e.g. the DL/T 645 ERR byte


class CommandExpired(EventPayload):
    """A command reached its expires_at before it was confirmed; it will not be sent again."""

    EVENT_TYPE: ClassVar[str] = "CommandExpired"
    EVENT_VERSION: ClassVar[int] = 1

    command_id: UUID
    device_id: Identifier
    expired_at: AwareDatetime
    attempts: NonNegativeInt


# The commands service's own lifecycle of a command, from request to its end. Valve and relay
# commands still reach ingest as ValveCommandIssued / RelayCommandIssued (the downlink contract);
# CommandDispatched is the lifecycle fact for every kind, and the downlink of the kinds ingest has
# no Issued event for (read now, time sync, set parameter).


class CommandKind(StrEnum):
    """What a command asks a device to do."""

    VALVE_OPEN = "valve_open"  # CJ/T 188 A017 value 55
    VALVE_CLOSE = "valve_close"  # CJ/T 188 A017 value 99
    RELAY_TRIP = "relay_trip"  # DL/T 645 1C, N1 = 1A
    RELAY_CLOSE_ALLOWED = "relay_close_allowed"  # N1 = 1B: the customer presses the button
    RELAY_CLOSE_DIRECT = "relay_close_direct"  # N1 = 1C: a later amendment, not every meter has it
    READ_NOW = "read_now"
    TIME_SYNC = "time_sync"
    SET_PARAMETER = "set_parameter"


class CommandOrigin(StrEnum):
    """Who or what decided a command."""

    POLICY = "policy"  # the tenant's cut-off policy, on a balance state
    OPERATOR = "operator"  # the operator console; requested_by and note say who and why
    SERVICE_OPERATION = "service_operation"  # a step of account opening, move-out, meter swap, download
    AUTOMATION = "automation"  # a tenant's automation rule; rule_id names it


class CommandPriority(StrEnum):
    """Which due command of a device goes first."""

    ROUTINE = "routine"  # parameter downloads, time syncs
    NORMAL = "normal"
    URGENT = "urgent"  # safety: a burst, an overload


class ParameterSetting(PayloadPart):
    """A device parameter to write, named as the device profile names it (e.g. a report period)."""

    name: Identifier
    value: Text


class ScheduleHold(StrEnum):
    """Why a command waits before it is sent."""

    NOT_BEFORE = "not_before"  # the requester's own start time
    QUIET_WINDOW = "quiet_window"  # no cut-off at night, at weekends or on holidays
    HOLIDAY = "holiday"
    EXEMPTION = "exemption"  # the account may not be cut off until a date
    MIN_INTERVAL = "min_interval"  # too soon after the device's last cut-off
    RETRY_BACKOFF = "retry_backoff"  # the read-back did not show the wanted state


class CommandRequested(EventPayload):
    """A command was accepted for a device; it waits for its time, or for the command before it."""

    EVENT_TYPE: ClassVar[str] = "CommandRequested"
    EVENT_VERSION: ClassVar[int] = 1

    command_id: UUID
    device_id: Identifier
    kind: CommandKind
    parameter: ParameterSetting | None  # exactly for set_parameter
    reason: CommandReason
    origin: CommandOrigin
    requested_by: Identifier  # an operator id, or the service that decided ("commands")
    note: Text | None  # why, in the requester's words; an operator always gives one
    rule_id: Identifier | None  # the automation rule, or the cut-off policy, that decided it
    account_id: Identifier | None
    operation_id: UUID | None  # the service operation this command is a step of
    after_command_id: UUID | None  # not sent before this command of the same device has ended
    batch_id: Identifier | None
    idempotency_key: Identifier | None  # the same key again answers this command
    priority: CommandPriority
    requested_at: AwareDatetime
    not_before: AwareDatetime | None
    holds: Annotated[tuple[ScheduleHold, ...], Field(max_length=len(ScheduleHold))]  # why not_before
    expires_at: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.holds and self.not_before is None:
            raise ValueError("holds say why not_before is set; without not_before there are none")
        if (self.kind is CommandKind.SET_PARAMETER) != (self.parameter is not None):
            raise ValueError("parameter is given exactly for set_parameter")
        if self.origin is CommandOrigin.OPERATOR and self.note is None:
            raise ValueError("an operator's command says why (note)")
        if self.origin is CommandOrigin.AUTOMATION and self.rule_id is None:
            raise ValueError("an automatic command names its rule")
        if self.expires_at <= max(self.requested_at, self.not_before or self.requested_at):
            raise ValueError("expires_at must be after requested_at and not_before")
        return self


class CommandScheduled(EventPayload):
    """A command will be sent at send_at (a retry is scheduled again with the next attempt)."""

    EVENT_TYPE: ClassVar[str] = "CommandScheduled"
    EVENT_VERSION: ClassVar[int] = 1

    command_id: UUID
    device_id: Identifier
    attempt: PositiveInt  # the send this schedules: 1, then 2 for the first retry …
    scheduled_at: AwareDatetime
    send_at: AwareDatetime
    holds: Annotated[tuple[ScheduleHold, ...], Field(max_length=len(ScheduleHold))]

    @model_validator(mode="after")
    def _not_in_the_past(self) -> Self:
        if self.send_at < self.scheduled_at:
            raise ValueError("send_at cannot be before scheduled_at")
        if self.send_at > self.scheduled_at and not self.holds:
            raise ValueError("a command held back says why (holds)")
        return self


class CommandDispatched(EventPayload):
    """A command left for the device (for valve and relay with a ValveCommandIssued / RelayCommandIssued)."""

    EVENT_TYPE: ClassVar[str] = "CommandDispatched"
    EVENT_VERSION: ClassVar[int] = 1

    command_id: UUID
    device_id: Identifier
    kind: CommandKind
    parameter: ParameterSetting | None
    attempt: PositiveInt
    dispatched_at: AwareDatetime
    expires_at: AwareDatetime

    @model_validator(mode="after")
    def _open(self) -> Self:
        if self.expires_at <= self.dispatched_at:
            raise ValueError("an expired command is not dispatched")
        return self


class CommandCompleted(EventPayload):
    """A command with no state to read back (read now, time sync, set parameter) was acknowledged."""

    EVENT_TYPE: ClassVar[str] = "CommandCompleted"
    EVENT_VERSION: ClassVar[int] = 1

    command_id: UUID
    device_id: Identifier
    completed_at: AwareDatetime
    attempts: PositiveInt


class CancelReason(StrEnum):
    """Why a command was withdrawn before it was sent."""

    OPERATOR = "operator"
    SUPERSEDED = "superseded"  # a later, contradicting intent for the device (latest intent wins)
    BALANCE_RESTORED = "balance_restored"  # a payment came before a held cut-off went out
    ALREADY_IN_STATE = "already_in_state"  # the device already reports the wanted state


class CommandCancelled(EventPayload):
    """A command was withdrawn before it reached the device; it will not be sent."""

    EVENT_TYPE: ClassVar[str] = "CommandCancelled"
    EVENT_VERSION: ClassVar[int] = 1

    command_id: UUID
    device_id: Identifier
    cancelled_at: AwareDatetime
    cancelled_by: Identifier  # an operator id, or "commands"
    reason: CancelReason
    detail: Text
    superseded_by: UUID | None  # the command that replaced it, when there is one

    @model_validator(mode="after")
    def _successor_named(self) -> Self:
        if self.superseded_by is not None and self.reason is not CancelReason.SUPERSEDED:
            raise ValueError("superseded_by is given only when the reason is superseded")
        return self


class CommandOutcome(StrEnum):
    """How a command ended without effect."""

    FAILED = "failed"
    EXPIRED = "expired"


class CommandEscalated(EventPayload):
    """A command ended without effect and an operator must look (notify delivers it as an alarm)."""

    EVENT_TYPE: ClassVar[str] = "CommandEscalated"
    EVENT_VERSION: ClassVar[int] = 1

    command_id: UUID
    device_id: Identifier
    kind: CommandKind
    reason: CommandReason
    account_id: Identifier | None
    outcome: CommandOutcome
    detail: Text
    escalated_at: AwareDatetime


class CommandProposed(EventPayload):
    """An automation rule in proposal mode suggests a command; an operator confirms it or lets it lapse."""

    EVENT_TYPE: ClassVar[str] = "CommandProposed"
    EVENT_VERSION: ClassVar[int] = 1

    proposal_id: UUID
    rule_id: Identifier
    device_id: Identifier
    kind: CommandKind
    reason: CommandReason
    priority: CommandPriority
    cause_id: UUID  # the alarm (AlarmRaised.alarm_id) or the observation that triggered the rule
    detail: Text
    proposed_at: AwareDatetime
    expires_at: AwareDatetime

    @model_validator(mode="after")
    def _open(self) -> Self:
        if self.expires_at <= self.proposed_at:
            raise ValueError("a proposal expires after it is made")
        return self
