"""Moving a command through its life: request, schedule, dispatch, cancel, expire.

Each function takes the command and the time, and returns a Transition: the command after the
decision and the facts to publish. An empty Transition means there was nothing to do (not due,
already ended), so timers may call these as often as they like.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from uuid import UUID

from amiflow_schemas.events.commands import (
    CancelReason,
    CommandCancelled,
    CommandDispatched,
    CommandEscalated,
    CommandExpired,
    CommandKind,
    CommandOutcome,
    CommandRequested,
    CommandScheduled,
    RelayAction,
    RelayCommandIssued,
    ScheduleHold,
    ValveAction,
    ValveCommandIssued,
)
from amiflow_schemas.payload import EventPayload
from pydantic import PositiveInt

from commands.core.devices import DeviceState
from commands.core.model import (
    IN_FLIGHT,
    Command,
    CommandState,
    Configuration,
    Refusal,
    RefusalCode,
    Transition,
    apply,
    in_wanted_state,
    start,
)

SERVICE = "commands"  # requested_by / cancelled_by when the service itself decided

_VALVE_ACTION = {CommandKind.VALVE_OPEN: ValveAction.OPEN, CommandKind.VALVE_CLOSE: ValveAction.CLOSE}
_RELAY_ACTION = {CommandKind.RELAY_TRIP: RelayAction.TRIP, CommandKind.RELAY_CLOSE_ALLOWED: RelayAction.CLOSE_ALLOWED,
                 CommandKind.RELAY_CLOSE_DIRECT: RelayAction.CLOSE_DIRECT}


class LifecycleSettings(Configuration):
    """Retries, read-back and expiry timing; one per tenant or one for the service."""

    max_attempts: PositiveInt = 3  # sends of one command, the first included
    retry_backoff: timedelta = timedelta(minutes=5)  # before the second send
    retry_backoff_factor: PositiveInt = 2  # each further send waits this many times longer
    retry_backoff_max: timedelta = timedelta(hours=1)
    confirm_timeout: timedelta = timedelta(minutes=15)  # acknowledged, and no read-back since
    # Ingest reports a sent command's expiry from its mailbox; the service's own timer waits this
    # much longer, so it decides only when ingest is silent (down, or the event is late).
    delivery_grace: timedelta = timedelta(minutes=10)
    # A read-back showing the wanted state may carry a meter clock this far behind the send.
    clock_tolerance: timedelta = timedelta(minutes=5)


def backoff(attempt: int, settings: LifecycleSettings) -> timedelta:
    """The wait before the send after ``attempt`` sends."""
    factor: int = settings.retry_backoff_factor ** max(attempt - 1, 0)
    return min(settings.retry_backoff * factor, settings.retry_backoff_max)


def request(tenant_id: str, requested: CommandRequested, now: datetime) -> Transition:
    """Accept a request; it is scheduled at once unless it waits for the command before it."""
    command = start(tenant_id, requested)
    if requested.after_command_id is not None:
        return Transition(command, (requested,))
    scheduled = schedule(command, now)
    return Transition(scheduled.command, (requested, *scheduled.events))


def schedule(command: Command, now: datetime) -> Transition:
    """Give a requested command its first send time: now, or its not_before."""
    if command.state is not CommandState.REQUESTED:
        return Transition(command)
    not_before = command.request.not_before
    send_at = max(now, not_before) if not_before is not None else now
    holds = (command.request.holds or (ScheduleHold.NOT_BEFORE,)) if send_at > now else ()
    return apply(command, CommandScheduled(command_id=command.command_id, device_id=command.device_id,
                                           attempt=command.attempt + 1, scheduled_at=now, send_at=send_at,
                                           holds=holds))


def release(ended: Command, waiting: Iterable[Command], now: datetime) -> tuple[Transition, ...]:
    """Schedule the commands queued after one that has ended, whatever its outcome."""
    if ended.is_open:
        return ()
    return tuple(schedule(w, now) for w in waiting
                 if w.request.after_command_id == ended.command_id and w.state is CommandState.REQUESTED)


def dispatch(command: Command, device: DeviceState | None, now: datetime) -> Transition:
    """Send a scheduled command that is due; a first send to a device already in the wanted state is dropped."""
    if command.state is not CommandState.SCHEDULED or command.send_at is None or now < command.send_at:
        return Transition(command)
    if now >= command.expires_at:
        return _expired(command, now)
    if command.attempt == 0 and device is not None and in_wanted_state(command.kind, device.valve, device.relay):
        seen = device.reported_at.isoformat() if device.reported_at else "earlier"
        cancelled = cancel(command, SERVICE, CancelReason.ALREADY_IN_STATE,
                           f"not sent: the device already reported the wanted state ({seen})", now)
        return cancelled if isinstance(cancelled, Transition) else Transition(command)
    dispatched = CommandDispatched(command_id=command.command_id, device_id=command.device_id, kind=command.kind,
                                   parameter=command.request.parameter, attempt=command.attempt + 1,
                                   dispatched_at=now, expires_at=command.expires_at)
    downlink = _downlink(command, now)
    transition = apply(command, dispatched)
    return Transition(transition.command, (dispatched, downlink) if downlink else (dispatched,))


def _downlink(command: Command, now: datetime) -> EventPayload | None:
    """The ValveCommandIssued / RelayCommandIssued ingest delivers; other kinds go by CommandDispatched."""
    r = command.request
    facts = {"command_id": r.command_id, "device_id": r.device_id, "reason": r.reason,
             "requested_by": r.requested_by, "account_id": r.account_id, "issued_at": now, "not_before": None,
             "expires_at": r.expires_at}
    if r.kind in _VALVE_ACTION:
        return ValveCommandIssued(**facts, action=_VALVE_ACTION[r.kind])
    if r.kind in _RELAY_ACTION:
        return RelayCommandIssued(**facts, action=_RELAY_ACTION[r.kind])
    return None


def cancel(command: Command, by: str, reason: CancelReason, detail: str, now: datetime,
           superseded_by: UUID | None = None) -> Transition | Refusal:
    """Withdraw a command that has not been sent; a sent one cannot be called back from the device."""
    if command.state in IN_FLIGHT:
        sent = command.dispatched_at.isoformat() if command.dispatched_at else "already"
        return Refusal(RefusalCode.NOT_CANCELLABLE, f"sent to the device at {sent}; a sent command cannot be"
                                                    " called back, send the opposite command instead")
    if not command.is_open:
        return Refusal(RefusalCode.NOT_CANCELLABLE, f"the command has already ended ({command.state.value})")
    return apply(command, CommandCancelled(command_id=command.command_id, device_id=command.device_id,
                                           cancelled_at=now, cancelled_by=by, reason=reason, detail=detail,
                                           superseded_by=superseded_by))


def expiry_due_at(command: Command, settings: LifecycleSettings) -> datetime | None:
    """When the service's own timer expires an open command (later for a sent one: ingest reports it)."""
    if not command.is_open:
        return None
    grace = settings.delivery_grace if command.state is CommandState.DISPATCHED else timedelta(0)
    return command.expires_at + grace


def expire(command: Command, now: datetime, settings: LifecycleSettings) -> Transition:
    """Expire an open command whose time is up, and raise an operator alarm."""
    due = expiry_due_at(command, settings)
    if due is None or now < due:
        return Transition(command)
    return _expired(command, now)


def _expired(command: Command, now: datetime) -> Transition:
    expired = CommandExpired(command_id=command.command_id, device_id=command.device_id, expired_at=now,
                             attempts=command.attempt)
    detail = f"not confirmed by {command.expires_at.isoformat()} after {command.attempt} send(s)"
    return apply(command, expired, escalation(command, CommandOutcome.EXPIRED, detail, now))


def escalation(command: Command, outcome: CommandOutcome, detail: str, now: datetime) -> CommandEscalated:
    """The operator alarm for a command that ended without effect."""
    r = command.request
    return CommandEscalated(command_id=r.command_id, device_id=r.device_id, kind=r.kind, reason=r.reason,
                            account_id=r.account_id, outcome=outcome, detail=detail[:2000], escalated_at=now)
