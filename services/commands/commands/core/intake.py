"""Accepting a request: the same idempotency key answers the first command, bad input is refused,
and the latest intent for a valve or relay wins.

Never two contradicting commands outstanding on one device: a contradicting command not yet sent
is cancelled as superseded; one already sent cannot be called back, so the new command is queued
after it and goes out once it has ended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from amiflow_schemas.events.commands import CancelReason, CommandKind, CommandRequested

from commands.core.capabilities import Device, check_request, first_for_key
from commands.core.lifecycle import cancel, request
from commands.core.model import IN_FLIGHT, PENDING, Command, Refusal, Transition, contradicts


@dataclass(frozen=True)
class Conflicts:
    """A device's open commands that contradict a new one, and one of the same kind if any."""

    pending: tuple[Command, ...]  # not sent yet: cancelled when the new intent goes ahead
    in_flight: Command | None  # sent: the new command waits for it
    same_kind: Command | None


def conflicts(kind: CommandKind, outstanding: Sequence[Command]) -> Conflicts:
    """Sort a device's open commands by how they bear on a new command of ``kind``."""
    pending = tuple(c for c in outstanding if c.state in PENDING and contradicts(kind, c.kind))
    in_flight = next((c for c in outstanding if c.state in IN_FLIGHT and contradicts(kind, c.kind)), None)
    same = next((c for c in outstanding if c.is_open and c.kind is kind), None)
    return Conflicts(pending, in_flight, same)


def queued_after_in_flight(requested: CommandRequested, found: Conflicts) -> CommandRequested:
    """The request, queued after a contradicting command already sent (unless it already waits for one)."""
    if found.in_flight is None or requested.after_command_id is not None:
        return requested
    return requested.model_copy(update={"after_command_id": found.in_flight.command_id})


def supersede(found: Conflicts, requested: CommandRequested, now: datetime) -> tuple[Transition, ...]:
    """Cancel the contradicting commands not yet sent in favour of the new request."""
    detail = f"superseded by {requested.kind.value} {requested.command_id} from {requested.requested_by}"
    done = (cancel(c, requested.requested_by, CancelReason.SUPERSEDED, detail, now, requested.command_id)
            for c in found.pending)
    return tuple(t for t in done if isinstance(t, Transition))


@dataclass(frozen=True)
class Accepted:
    """The command a request resulted in, and every transition it caused (its own last)."""

    command: Command
    transitions: tuple[Transition, ...]
    duplicate: bool = False  # True: the idempotency key was used before; nothing new happened


def submit(tenant_id: str, requested: CommandRequested, device: Device | None, outstanding: Sequence[Command],
           known_for_key: Command | None, now: datetime) -> Accepted | Refusal:
    """Accept a request from the console, a rule or a service operation, or refuse it with a reason."""
    first = first_for_key(requested.idempotency_key, known_for_key)
    if first is not None:
        return Accepted(first, (), duplicate=True)
    refusal = check_request(requested, device, now)
    if refusal is not None:
        return refusal
    found = conflicts(requested.kind, [c for c in outstanding if c.device_id == requested.device_id])
    requested = queued_after_in_flight(requested, found)
    own = request(tenant_id, requested, now)
    return Accepted(own.command, (*supersede(found, requested, now), own))


def submit_batch(tenant_id: str, lines: Sequence[CommandRequested], devices: Mapping[str, Device],
                 outstanding: Sequence[Command], known_by_key: Mapping[str, Command],
                 now: datetime) -> tuple[Accepted | Refusal, ...]:
    """Submit lines in order, each seeing what the lines before it did (a later line wins on a device)."""
    results: list[Accepted | Refusal] = []
    current = {c.command_id: c for c in outstanding}
    known = dict(known_by_key)
    for line in lines:
        key = line.idempotency_key
        result = submit(tenant_id, line, devices.get(line.device_id), [c for c in current.values() if c.is_open],
                        known.get(key) if key else None, now)
        results.append(result)
        if isinstance(result, Accepted):
            current.update({t.command.command_id: t.command for t in result.transitions})
            if key:
                known[key] = result.command
    return tuple(results)

