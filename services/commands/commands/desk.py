"""Carrying the core's decisions out on the stored commands, in the caller's transaction.

Every transition is kept with its events (the command's log) and the events go to the outbox; a
command that ends releases the ones queued after it; a command due now is sent now rather than at
the next tick. Every function expects the device's lock to be held (``lock_devices``): one
transaction at a time decides about a device, so two contradicting commands cannot both be
accepted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from amiflow_runtime.db import lock_for_transaction
from amiflow_schemas import Envelope, EventPayload, new_envelope
from amiflow_schemas.events.commands import CommandRequested
from sqlalchemy.ext.asyncio import AsyncSession

from commands.adapters import store
from commands.core.devices import observe_command
from commands.core.intake import Accepted, submit
from commands.core.lifecycle import LifecycleSettings, release
from commands.core.model import Command, Refusal, Transition
from commands.core.timers import next_due_at, on_timer

PRODUCER = "commands"


async def lock_devices(session: AsyncSession, tenant_id: str, device_ids: Iterable[str]) -> None:
    """Take the devices' locks in one order, so two transactions never wait on each other."""
    for device_id in sorted(set(device_ids)):
        await lock_for_transaction(session, tenant_id, "device", device_id)


class Desk:
    """One transaction's view of a tenant's commands: what it decided, ready for the outbox."""

    def __init__(self, session: AsyncSession, tenant_id: str, settings: LifecycleSettings, now: datetime,
                 cause: Envelope[Any] | None = None) -> None:
        self.session, self.tenant_id, self.settings, self.now, self.cause = session, tenant_id, settings, now, cause
        self.published: list[EventPayload] = []

    async def take(self, transitions: Iterable[Transition], received: EventPayload | None = None) -> None:
        """Keep each transition and its events; release what waited; send what is due now.

        ``received`` is ingest's event the transition answers (an acknowledgement, a failure): it is
        already on Kafka, so it goes into the command's history but not into the outbox.
        """
        for t in transitions:
            before = await store.load(self.session, self.tenant_id, t.command.command_id)
            requested = bool(t.events) and isinstance(t.events[0], CommandRequested)
            if before is None and not requested:
                continue  # a command this service never kept
            if before is not None and requested:
                continue  # the same decision again (a redelivered cause): the command exists
            if before == t.command and not t.events:
                continue  # nothing happened
            logged = (*((received,) if received is not None else ()), *t.events)
            await store.put(self.session, self.tenant_id, before, t.command, logged,
                            next_due_at(t.command, self.settings), self.now)
            state = await store.device_state(self.session, self.tenant_id, t.command.device_id)
            await store.save_device_state(self.session, self.tenant_id, state, observe_command(state, t.command),
                                          self.now)
            self.published.extend(t.events)
            if before is not None and before.is_open and not t.command.is_open:
                waiting = await store.waiting_after(self.session, self.tenant_id, t.command)
                await self.take(release(t.command, waiting, self.now))
            await self._send_if_due(t.command)

    async def _send_if_due(self, command: Command) -> None:
        # ``command`` is what was just kept: releasing followers never changes it, so no reload.
        due = next_due_at(command, self.settings)
        if due is not None and due <= self.now and command.send_at is not None and command.send_at <= self.now:
            state = await store.device_state(self.session, self.tenant_id, command.device_id)
            await self.take([on_timer(command, state, self.now, self.settings)])

    async def submit(self, requested: CommandRequested) -> Accepted | Refusal:
        """A request from the console, a rule or an operation: accepted (or the key's first command) or refused."""
        known = await store.load(self.session, self.tenant_id, requested.command_id)
        if known is not None:  # the same derived id asked before (a redelivered cause, a repeated operation)
            return Accepted(known, (), duplicate=True)
        accepted = submit(self.tenant_id, requested,
                          await store.device(self.session, self.tenant_id, requested.device_id),
                          await store.open_of(self.session, self.tenant_id, requested.device_id),
                          await store.by_key(self.session, self.tenant_id, requested.idempotency_key), self.now)
        if isinstance(accepted, Accepted) and not accepted.duplicate:
            await self.take(accepted.transitions)
            accepted = Accepted(await store.load(self.session, self.tenant_id, requested.command_id)
                                or accepted.command, accepted.transitions)
        return accepted

    def envelopes(self) -> list[Envelope[Any]]:
        """The published events as the outbox takes them, keyed by device."""
        return [envelope_of(e, self.tenant_id, self.now, self.cause) for e in self.published]


def envelope_of(payload: EventPayload, tenant_id: str, now: datetime, cause: Envelope[Any] | None) -> Envelope[Any]:
    key = getattr(payload, "device_id", None) or getattr(payload, "account_id", None) or tenant_id
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=tenant_id, key=key, occurred_at=now,
                        recorded_at=now, producer=PRODUCER,
                        correlation_id=cause.correlation_id if cause else None,
                        causation_id=cause.event_id if cause else None)
