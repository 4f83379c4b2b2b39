"""What the commands service knows of a device's valve or relay, and why it is in that state."""

from __future__ import annotations

from uuid import UUID

from amiflow_schemas.events.commands import CommandKind, CommandReason
from amiflow_schemas.events.devices import DeviceStatusReported
from amiflow_schemas.primitives import Identifier, RelayState, ValveState
from pydantic import AwareDatetime

from commands.core.model import CUT_OFF_KINDS, RELAY_KINDS, VALVE_KINDS, Command, CommandState, Stored


class SwitchRecord(Stored):
    """The last valve or relay command that was confirmed on the device."""

    command_id: UUID
    kind: CommandKind
    reason: CommandReason
    confirmed_at: AwareDatetime


class DeviceState(Stored):
    """The latest read-back of a device and the commands that put it there."""

    device_id: Identifier
    valve: ValveState | None = None
    relay: RelayState | None = None
    reported_at: AwareDatetime | None = None
    status_event_id: UUID | None = None
    # A restore undoes only a cut-off of the balance: a valve closed on a burst stays closed.
    last_valve_switch: SwitchRecord | None = None
    last_relay_switch: SwitchRecord | None = None
    last_cut_off_at: AwareDatetime | None = None  # the last cut-off sent, for the minimum interval

    def last_switch(self, kind: CommandKind) -> SwitchRecord | None:
        """The last confirmed command of the valve or relay that ``kind`` moves."""
        if kind in VALVE_KINDS:
            return self.last_valve_switch
        return self.last_relay_switch if kind in RELAY_KINDS else None


def observe_status(state: DeviceState | None, status: DeviceStatusReported, event_id: UUID) -> DeviceState:
    """The device state after a status report; an older report than the one kept changes nothing."""
    state = state or DeviceState(device_id=status.meter_id)
    if state.reported_at is not None and status.reported_at < state.reported_at:
        return state
    # A report without the relay (not read this time) keeps what the last read showed.
    return state.model_copy(update={
        "valve": status.valve if status.valve is not None else state.valve,
        "relay": status.relay if status.relay is not None else state.relay,
        "reported_at": status.reported_at, "status_event_id": event_id})


def observe_command(state: DeviceState | None, command: Command) -> DeviceState:
    """The device state after a command's transition: a cut-off sent, or a switch confirmed."""
    state = state or DeviceState(device_id=command.device_id)
    if command.state is CommandState.DISPATCHED and command.kind in CUT_OFF_KINDS and command.dispatched_at:
        return state.model_copy(update={"last_cut_off_at": command.dispatched_at})
    if command.state is CommandState.CONFIRMED and command.ended_at and command.kind in VALVE_KINDS | RELAY_KINDS:
        record = SwitchRecord(command_id=command.command_id, kind=command.kind, reason=command.request.reason,
                              confirmed_at=command.ended_at)
        field = "last_valve_switch" if command.kind in VALVE_KINDS else "last_relay_switch"
        return state.model_copy(update={field: record})
    return state
