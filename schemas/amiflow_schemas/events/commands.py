"""The lifecycle of a valve or relay command: issued, acknowledged, confirmed, failed, expired."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, NonNegativeInt, PositiveInt, model_validator

from amiflow_schemas.payload import EventPayload
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
