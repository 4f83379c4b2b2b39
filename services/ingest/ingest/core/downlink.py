"""Remote commands on their way to a meter: the mailbox rules, and the bus exchange each kind needs.

The commands service sends a command once per attempt, and a retry reuses the command id. So
the mailbox holds one row per command id. A new send reopens the row if the earlier send has
ended, and leaves the row alone if the earlier send is still waiting for the meter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID
from zoneinfo import ZoneInfo

from amiflow_schemas.events.commands import (
    CommandDispatched,
    CommandKind,
    ParameterSetting,
    RelayAction,
    RelayCommandIssued,
    ValveAction,
    ValveCommandIssued,
)

from ingest.core.meter_requests import (
    is_broadcast_time_sync,
    parameter_write,
    read_requests,
    relay_command,
    time_sync_command,
    valve_command,
)
from ingest.core.protocols import MeterProfile
from ingest.core.registry import MeterDetails

MAX_DETAIL = 2000  # CommandFailed.detail is bounded text; the mailbox keeps no more than it can publish


class DownlinkKind(StrEnum):
    """What a mailbox row asks of its meter."""

    VALVE = "valve"
    RELAY = "relay"
    READ_NOW = "read_now"
    TIME_SYNC = "time_sync"
    SET_PARAMETER = "set_parameter"


# Valve and relay commands travel as ValveCommandIssued / RelayCommandIssued, which carry the
# action. Their CommandDispatched is only the lifecycle record, so taking it as well would send
# the command twice.
_DISPATCHED_ALONE = {CommandKind.READ_NOW: DownlinkKind.READ_NOW, CommandKind.TIME_SYNC: DownlinkKind.TIME_SYNC,
                     CommandKind.SET_PARAMETER: DownlinkKind.SET_PARAMETER}


class MailboxState(StrEnum):
    """Where a command's current send stands."""

    PENDING = "pending"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class MailboxCommand:
    """One send of a command, as the mailbox keeps it."""

    command_id: UUID
    meter_id: str
    kind: DownlinkKind
    action: str | None  # the ValveAction / RelayAction value; None for the other kinds
    parameter: ParameterSetting | None  # only for set_parameter
    not_before: datetime | None
    expires_at: datetime
    send: int | None = None  # the commands service's attempt number, when the event carries one


def mailbox_command(event: object) -> MailboxCommand | None:
    """The send a lifecycle event asks for, or None when the downlink has nothing to deliver for it."""
    if isinstance(event, ValveCommandIssued | RelayCommandIssued):
        kind = DownlinkKind.VALVE if isinstance(event, ValveCommandIssued) else DownlinkKind.RELAY
        return MailboxCommand(event.command_id, event.device_id, kind, event.action.value, None, event.not_before,
                              event.expires_at)
    if isinstance(event, CommandDispatched) and event.kind in _DISPATCHED_ALONE:
        return MailboxCommand(event.command_id, event.device_id, _DISPATCHED_ALONE[event.kind], None,
                              event.parameter, None, event.expires_at, event.attempt)
    return None


class Arrival(StrEnum):
    """What a send does to the mailbox."""

    NEW = "new"  # the first send: a new row
    RESEND = "resend"  # the row had ended: pending again, counting this send's attempts from zero
    STILL_PENDING = "still_pending"  # the earlier send still waits for the meter: only its deadline moves


def arrival(existing: MailboxState | None) -> Arrival:
    """How a send of a command meets the mailbox row of that command id, if there is one."""
    # A repeated event (same event id) never reaches here, because the inbox drops it. The same
    # command id in a new event is a deliberate new send, so even an acknowledged row goes out again.
    if existing is None:
        return Arrival.NEW
    return Arrival.STILL_PENDING if existing is MailboxState.PENDING else Arrival.RESEND


RESEND = "re-send"


def resend_note(previous: MailboxState, attempts: int, detail: str | None, send: int | None) -> str:
    """The mailbox detail of a re-send: what became of the send before it."""
    which = f"{RESEND} (attempt {send})" if send is not None else RESEND
    before = f": {' / '.join(detail.splitlines())}" if detail else ""
    return f"{which}; the previous send ended {previous.value} after {attempts} bus attempt(s){before}"[:MAX_DETAIL]


def send_detail(current: str | None, outcome: str | None) -> str | None:
    """A row's detail after an outcome of its send: a re-send keeps its note, and the outcome follows it."""
    first = current.splitlines()[0] if current else ""
    lines = [line for line in (first if first.startswith(RESEND) else "", outcome or "") if line]
    return "\n".join(lines)[:MAX_DETAIL] or None


class Exchange(StrEnum):
    """How a command goes over the bus and what acknowledges it."""

    WRITE = "write"  # one request; the meter's reply acknowledges it
    READ = "read"  # the meter's poll reads; the replies are published as a poll's, then acknowledged
    BROADCAST = "broadcast"  # no meter answers (DL/T 645 C=08): acknowledged once it is sent


@dataclass(frozen=True)
class BusOrder:
    """The frames of one send, in order, and how they are exchanged."""

    exchange: Exchange
    requests: tuple[bytes, ...]


def bus_order(command: MailboxCommand, details: MeterDetails, profile: MeterProfile, now: datetime,
              tz: ZoneInfo) -> BusOrder:
    """The frames a command needs on this meter's bus; ValueError when its model cannot carry it out."""
    if command.kind is DownlinkKind.VALVE:
        return BusOrder(Exchange.WRITE, (valve_command(details, profile, ValveAction(_action(command))),))
    if command.kind is DownlinkKind.RELAY:
        return BusOrder(Exchange.WRITE, (relay_command(details, profile, RelayAction(_action(command)), now, tz),))
    if command.kind is DownlinkKind.READ_NOW:
        reads = tuple(read_requests(details, profile))
        if not reads:
            raise ValueError(f"meter model {profile.name} lists no reads")
        return BusOrder(Exchange.READ, reads)
    if command.kind is DownlinkKind.TIME_SYNC:
        exchange = Exchange.BROADCAST if is_broadcast_time_sync(profile) else Exchange.WRITE
        return BusOrder(exchange, (time_sync_command(details, profile, now, tz),))
    if command.parameter is None:
        raise ValueError("a set_parameter command without a parameter")
    return BusOrder(Exchange.WRITE, (parameter_write(profile, command.parameter),))


def _action(command: MailboxCommand) -> str:
    if command.action is None:
        raise ValueError(f"a {command.kind.value} command without an action")
    return command.action
