"""An acknowledgement is not success: a valve or relay command is confirmed by reading the state back.

protocols.md §4 item 5: the reply to A017 or 1C only says the device heard. Ingest reads the
meter back right after the reply (CJ/T 188 ST valve bits in 901F, DL/T 645 run-status word 3),
and that arrives as DeviceStatusReported. Only a read-back showing the wanted state confirms;
one showing another state sends the command again after a back-off, up to the attempt limit.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from amiflow_schemas.events.commands import (
    CommandAcknowledged,
    CommandCompleted,
    CommandConfirmed,
    CommandExpired,
    CommandFailed,
    CommandOutcome,
    CommandScheduled,
    FailureReason,
    ScheduleHold,
)
from amiflow_schemas.events.devices import DeviceStatusReported
from amiflow_schemas.primitives import RelayState, ValveState

from commands.core.devices import DeviceState
from commands.core.lifecycle import LifecycleSettings, backoff, escalation
from commands.core.model import (
    RELAY_KINDS,
    VALVE_KINDS,
    Command,
    CommandState,
    Transition,
    apply,
    evolve,
    in_wanted_state,
)


def acknowledge(command: Command, ack: CommandAcknowledged, device: DeviceState | None,
                settings: LifecycleSettings) -> Transition:
    """Take ingest's acknowledgement; a read or clock command is done, a valve or relay waits for its read-back."""
    acked = evolve(command, ack)
    if acked.state is command.state:
        return Transition(command)
    if command.kind not in VALVE_KINDS | RELAY_KINDS:
        done = CommandCompleted(command_id=command.command_id, device_id=command.device_id,
                                completed_at=ack.acknowledged_at, attempts=acked.attempt)
        return apply(acked, done)
    # The read-back may have been processed before the acknowledgement (two topics, no order).
    if device is not None and device.reported_at is not None and _shows_wanted(acked, device.valve, device.relay,
                                                                                device.reported_at, settings):
        return apply(acked, _confirmed(acked, device.valve, device.relay, device.status_event_id,
                                       ack.acknowledged_at))
    return Transition(acked)


def confirm_from_status(command: Command, status: DeviceStatusReported, status_event_id: UUID, now: datetime,
                        settings: LifecycleSettings) -> Transition:
    """Confirm on a read-back in the wanted state; on another state, send again or fail."""
    if status.meter_id != command.device_id or not _awaits_read_back(command):
        return Transition(command)
    if _shows_wanted(command, status.valve, status.relay, status.reported_at, settings):
        return apply(command, _confirmed(command, status.valve, status.relay, status_event_id, now))
    shown = in_wanted_state(command.kind, status.valve, status.relay)
    sent_at = command.dispatched_at
    # A mismatch counts only from a report taken after the send: an older one proves nothing.
    if shown is None or command.state is not CommandState.ACKNOWLEDGED or sent_at is None \
            or status.reported_at < sent_at:
        return Transition(command)
    state = status.valve if command.kind in VALVE_KINDS else status.relay
    detail = f"acknowledged, but the device reported {state.value if state else 'nothing'} at " \
             f"{status.reported_at.isoformat()}"
    return retry_or_fail(command, now, settings, FailureReason.READ_BACK_MISMATCH, detail)


def confirmation_overdue(command: Command, now: datetime, settings: LifecycleSettings) -> Transition:
    """An acknowledged command with no read-back within the timeout is sent again, or fails."""
    acked_at = command.acknowledged_at
    if command.state is not CommandState.ACKNOWLEDGED or acked_at is None or now < acked_at + settings.confirm_timeout:
        return Transition(command)
    detail = f"acknowledged at {acked_at.isoformat()}, no read-back within {settings.confirm_timeout}"
    return retry_or_fail(command, now, settings, FailureReason.NO_READ_BACK, detail)


def retry_or_fail(command: Command, now: datetime, settings: LifecycleSettings, reason: FailureReason,
                  detail: str) -> Transition:
    """Schedule the next send after a back-off, or fail with an operator alarm when none is left."""
    send_at = now + backoff(command.attempt, settings)
    if command.attempt < settings.max_attempts and send_at < command.expires_at:
        return apply(command, CommandScheduled(command_id=command.command_id, device_id=command.device_id,
                                               attempt=command.attempt + 1, scheduled_at=now, send_at=send_at,
                                               holds=(ScheduleHold.RETRY_BACKOFF,)))
    failed = CommandFailed(command_id=command.command_id, device_id=command.device_id, failed_at=now,
                           reason=reason, detail=detail[:2000], attempts=command.attempt, device_error_code=None)
    return apply(command, failed, escalation(command, CommandOutcome.FAILED, detail, now))


def record_delivery_outcome(command: Command, outcome: CommandFailed | CommandExpired, now: datetime) -> Transition:
    """Take ingest's verdict that a send failed or expired: the command ends and an operator is alarmed."""
    ended = evolve(command, outcome)
    if ended.state is command.state:
        return Transition(command)
    # Ingest published the CommandFailed / CommandExpired itself; only the alarm is new.
    if isinstance(outcome, CommandFailed):
        alarm = escalation(command, CommandOutcome.FAILED, f"{outcome.reason.value}: {outcome.detail}", now)
    else:
        alarm = escalation(command, CommandOutcome.EXPIRED, "expired before the device could be reached", now)
    return Transition(ended, (alarm,))


def _awaits_read_back(command: Command) -> bool:
    if command.kind not in VALVE_KINDS | RELAY_KINDS:
        return False
    # A retry waiting out its back-off is still settled by a late read-back showing the state.
    return command.state is CommandState.ACKNOWLEDGED or (command.state is CommandState.SCHEDULED
                                                          and command.attempt > 0)


def _shows_wanted(command: Command, valve: ValveState | None, relay: RelayState | None, reported_at: datetime,
                  settings: LifecycleSettings) -> bool:
    sent_at = command.dispatched_at
    fresh = sent_at is not None and reported_at >= sent_at - settings.clock_tolerance
    return fresh and in_wanted_state(command.kind, valve, relay) is True


def _confirmed(command: Command, valve: ValveState | None, relay: RelayState | None, read_back_event_id: UUID | None,
               now: datetime) -> CommandConfirmed:
    is_valve = command.kind in VALVE_KINDS
    return CommandConfirmed(command_id=command.command_id, device_id=command.device_id, confirmed_at=now,
                            valve_state=valve if is_valve else None, relay_state=None if is_valve else relay,
                            read_back_event_id=read_back_event_id)
