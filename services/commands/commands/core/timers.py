"""What a command's timer does when it fires, and when it should fire next.

The adapter keeps one due time per open command (``next_due_at``), and when that time comes
calls ``on_timer``; firing early or twice is harmless, because every step checks its own time.
"""

from __future__ import annotations

from datetime import datetime

from amiflow_schemas.events.commands import CommandPriority

from commands.core.confirmation import confirmation_overdue
from commands.core.devices import DeviceState
from commands.core.lifecycle import LifecycleSettings, dispatch, expire, expiry_due_at
from commands.core.model import Command, CommandState, Transition

_PRIORITY_RANK = {CommandPriority.URGENT: 0, CommandPriority.NORMAL: 1, CommandPriority.ROUTINE: 2}


def next_due_at(command: Command, settings: LifecycleSettings) -> datetime | None:
    """When the command's timer must fire next; None once it has ended."""
    expiry = expiry_due_at(command, settings)
    if expiry is None:
        return None
    if command.state is CommandState.SCHEDULED and command.send_at is not None:
        return min(command.send_at, expiry)
    if command.state is CommandState.ACKNOWLEDGED and command.acknowledged_at is not None:
        return min(command.acknowledged_at + settings.confirm_timeout, expiry)
    return expiry


def on_timer(command: Command, device: DeviceState | None, now: datetime, settings: LifecycleSettings) -> Transition:
    """Send what is due, resend or fail what was not read back, expire what ran out of time."""
    if command.state is CommandState.SCHEDULED and now < command.expires_at:
        return dispatch(command, device, now)
    if command.state is CommandState.ACKNOWLEDGED and now < command.expires_at:
        return confirmation_overdue(command, now, settings)
    return expire(command, now, settings)


def dispatch_key(command: Command) -> tuple[int, datetime, datetime]:
    """Sort key for commands due at once: the more urgent first, then the earlier due, then the earlier asked."""
    due: datetime = command.send_at or command.expires_at
    return _PRIORITY_RANK[command.request.priority], due, command.request.requested_at
