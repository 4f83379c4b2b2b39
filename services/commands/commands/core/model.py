"""A command's state, its transition table, and the fold of its lifecycle events.

The decide functions (lifecycle, intake, cutoff, automation, operations) build events; the state
is always ``evolve`` folded over them, so a command rebuilt from its history equals the one the
service kept. An event that does not fit the state (a redelivered acknowledgement, a late reply
to a command that already expired) leaves the command as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from amiflow_schemas.events.commands import (
    CommandAcknowledged,
    CommandCancelled,
    CommandCompleted,
    CommandConfirmed,
    CommandDispatched,
    CommandExpired,
    CommandFailed,
    CommandKind,
    CommandRequested,
    CommandScheduled,
)
from amiflow_schemas.payload import EventPayload
from amiflow_schemas.primitives import Identifier, RelayState, Utility, ValveState
from pydantic import AwareDatetime, BaseModel, ConfigDict, NonNegativeInt


class Stored(BaseModel):
    """State kept in a table: frozen, serialisable with model_dump(mode="json")."""

    # extra="ignore" lets an older worker read state a newer one wrote during a rolling deploy.
    model_config = ConfigDict(frozen=True, extra="ignore")


class Configuration(BaseModel):
    """A tenant's configuration as data: frozen, and an unknown key is refused, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class CommandState(StrEnum):
    """Where a command is in its life."""

    REQUESTED = "requested"  # accepted; waits for the command it is queued after
    SCHEDULED = "scheduled"  # has a send time (policy hold, not_before, or a retry's back-off)
    DISPATCHED = "dispatched"  # left for the device; ingest delivers it
    ACKNOWLEDGED = "acknowledged"  # the device replied; not yet proof that it acted
    CONFIRMED = "confirmed"  # a read-back showed the wanted state (or, for reads, the reply came)
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


TRANSITIONS: dict[CommandState, frozenset[CommandState]] = {
    CommandState.REQUESTED: frozenset({CommandState.SCHEDULED, CommandState.CANCELLED, CommandState.EXPIRED}),
    # SCHEDULED → CONFIRMED: a retry waiting out its back-off, when a late read-back shows the state after all.
    CommandState.SCHEDULED: frozenset({CommandState.DISPATCHED, CommandState.CONFIRMED, CommandState.CANCELLED,
                                       CommandState.EXPIRED}),
    CommandState.DISPATCHED: frozenset({CommandState.ACKNOWLEDGED, CommandState.FAILED, CommandState.EXPIRED}),
    # Back to SCHEDULED: the read-back did not show the wanted state and the command is sent again.
    CommandState.ACKNOWLEDGED: frozenset({CommandState.CONFIRMED, CommandState.SCHEDULED, CommandState.FAILED,
                                          CommandState.EXPIRED}),
    CommandState.CONFIRMED: frozenset(),
    CommandState.FAILED: frozenset(),
    CommandState.EXPIRED: frozenset(),
    CommandState.CANCELLED: frozenset(),
}

PENDING = frozenset({CommandState.REQUESTED, CommandState.SCHEDULED})  # may still be cancelled
IN_FLIGHT = frozenset({CommandState.DISPATCHED, CommandState.ACKNOWLEDGED})  # cannot be called back
OPEN = PENDING | IN_FLIGHT

VALVE_KINDS = frozenset({CommandKind.VALVE_OPEN, CommandKind.VALVE_CLOSE})
RELAY_KINDS = frozenset({CommandKind.RELAY_TRIP, CommandKind.RELAY_CLOSE_ALLOWED, CommandKind.RELAY_CLOSE_DIRECT})
CUT_OFF_KINDS = frozenset({CommandKind.VALVE_CLOSE, CommandKind.RELAY_TRIP})
CUT_OFF_KIND = {Utility.ELECTRICITY: CommandKind.RELAY_TRIP, Utility.WATER: CommandKind.VALVE_CLOSE,
                Utility.GAS: CommandKind.VALVE_CLOSE, Utility.HEAT: CommandKind.VALVE_CLOSE}

# What a read-back must show. After "close allowed" the customer may already have pressed the
# button, so a connected relay confirms it too.
WANTED_VALVE: dict[CommandKind, frozenset[ValveState]] = {
    CommandKind.VALVE_OPEN: frozenset({ValveState.OPEN}),
    CommandKind.VALVE_CLOSE: frozenset({ValveState.CLOSED}),
}
WANTED_RELAY: dict[CommandKind, frozenset[RelayState]] = {
    CommandKind.RELAY_TRIP: frozenset({RelayState.DISCONNECTED}),
    CommandKind.RELAY_CLOSE_ALLOWED: frozenset({RelayState.CLOSE_ALLOWED, RelayState.CONNECTED}),
    CommandKind.RELAY_CLOSE_DIRECT: frozenset({RelayState.CONNECTED}),
}


def actuator(kind: CommandKind) -> str | None:
    """The part of a device a kind moves ("valve", "relay"), or None when it moves nothing."""
    return "valve" if kind in VALVE_KINDS else "relay" if kind in RELAY_KINDS else None


def contradicts(kind: CommandKind, other: CommandKind) -> bool:
    """True when both move the same valve or relay to different ends."""
    return kind != other and actuator(kind) is not None and actuator(kind) == actuator(other)


def in_wanted_state(kind: CommandKind, valve: ValveState | None, relay: RelayState | None) -> bool | None:
    """Whether the reported state is what ``kind`` wants; None when unknown or nothing to compare."""
    if kind in WANTED_VALVE:
        return None if valve is None else valve in WANTED_VALVE[kind]
    if kind in WANTED_RELAY:
        return None if relay is None else relay in WANTED_RELAY[kind]
    return None


def derived_command_id(cause_id: UUID, *parts: str) -> UUID:
    """A command id derived from what caused it, so deciding twice on one event names the same command."""
    return uuid5(cause_id, ":".join(parts))


class Command(Stored):
    """One command: the request as it was made, and where it is now."""

    tenant_id: Identifier
    request: CommandRequested
    state: CommandState
    attempt: NonNegativeInt = 0  # sends so far
    send_at: AwareDatetime | None = None
    dispatched_at: AwareDatetime | None = None  # of the latest send
    acknowledged_at: AwareDatetime | None = None  # of the latest send
    ended_at: AwareDatetime | None = None
    detail: str | None = None  # why it ended, when it did not succeed
    updated_at: AwareDatetime

    @property
    def command_id(self) -> UUID:
        """The command's id."""
        command_id: UUID = self.request.command_id
        return command_id

    @property
    def device_id(self) -> str:
        """The device it is for."""
        device_id: str = self.request.device_id
        return device_id

    @property
    def kind(self) -> CommandKind:
        """What it asks the device to do."""
        return self.request.kind

    @property
    def expires_at(self) -> datetime:
        """When it must have been confirmed by."""
        expires_at: datetime = self.request.expires_at
        return expires_at

    @property
    def is_open(self) -> bool:
        """True until it is confirmed, failed, expired or cancelled."""
        return self.state in OPEN


def start(tenant_id: str, requested: CommandRequested) -> Command:
    """The command a CommandRequested creates."""
    return Command(tenant_id=tenant_id, request=requested, state=CommandState.REQUESTED,
                   updated_at=requested.requested_at)


_Step = Callable[[Any], tuple[CommandState, datetime, dict[str, Any]]]

_STEPS: dict[type[EventPayload], _Step] = {
    CommandScheduled: lambda e: (CommandState.SCHEDULED, e.scheduled_at, {"send_at": e.send_at}),
    CommandDispatched: lambda e: (CommandState.DISPATCHED, e.dispatched_at, {
        "attempt": e.attempt, "dispatched_at": e.dispatched_at, "acknowledged_at": None, "send_at": None}),
    CommandAcknowledged: lambda e: (CommandState.ACKNOWLEDGED, e.acknowledged_at,
                                    {"acknowledged_at": e.acknowledged_at}),
    CommandConfirmed: lambda e: (CommandState.CONFIRMED, e.confirmed_at, {"ended_at": e.confirmed_at}),
    CommandCompleted: lambda e: (CommandState.CONFIRMED, e.completed_at, {"ended_at": e.completed_at}),
    CommandFailed: lambda e: (CommandState.FAILED, e.failed_at, {"ended_at": e.failed_at, "detail": e.detail}),
    CommandExpired: lambda e: (CommandState.EXPIRED, e.expired_at, {"ended_at": e.expired_at}),
    CommandCancelled: lambda e: (CommandState.CANCELLED, e.cancelled_at,
                                 {"ended_at": e.cancelled_at, "detail": e.detail}),
}


def evolve(command: Command, event: EventPayload) -> Command:
    """The command after one lifecycle event; an event that does not fit its state changes nothing."""
    step = _STEPS.get(type(event))
    if step is None or getattr(event, "command_id", None) != command.command_id:
        return command
    target, at, changes = step(event)
    if target not in TRANSITIONS[command.state]:
        return command
    return command.model_copy(update={"state": target, "updated_at": at, **changes})


def history(tenant_id: str, requested: CommandRequested, events: Iterable[EventPayload]) -> Command:
    """A command rebuilt from its stored events, oldest first."""
    command = start(tenant_id, requested)
    for event in events:
        command = evolve(command, event)
    return command


@dataclass(frozen=True)
class Transition:
    """A command after a decision, and the facts to publish about it (none: nothing happened)."""

    command: Command
    events: tuple[EventPayload, ...] = ()


def apply(command: Command, *events: EventPayload) -> Transition:
    """Fold the decided events onto the command."""
    for event in events:
        command = evolve(command, event)
    return Transition(command, events)


class RefusalCode(StrEnum):
    """Why a request or an action on a command was refused."""

    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_REMOVED = "device_removed"
    KIND_NOT_SUPPORTED = "kind_not_supported"
    WINDOW_PASSED = "window_passed"
    NOT_CANCELLABLE = "not_cancellable"
    PROPOSAL_EXPIRED = "proposal_expired"


@dataclass(frozen=True)
class Refusal:
    """A refusal with a reason an operator can act on."""

    code: RefusalCode
    message: str
