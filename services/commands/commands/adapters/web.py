"""What the console's routers share: refusals as HTTP answers, the command as the console shows it, and the
transaction every command write runs in (device locks, a Desk, the outbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from amiflow_runtime.auth import Principal
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.outbox import stage
from amiflow_schemas.events.commands import (
    CommandCancelled,
    CommandKind,
    CommandOrigin,
    CommandPriority,
    CommandReason,
    ParameterSetting,
    ScheduleHold,
)
from fastapi import HTTPException
from pydantic import BaseModel

from commands.adapters import db, store
from commands.config import CommandsSettings
from commands.core.intake import Accepted
from commands.core.model import Command, CommandState, Refusal, RefusalCode
from commands.desk import Desk, lock_devices

T = TypeVar("T")

STATUS = {RefusalCode.UNKNOWN_DEVICE: 404, RefusalCode.DEVICE_REMOVED: 422, RefusalCode.KIND_NOT_SUPPORTED: 422,
          RefusalCode.WINDOW_PASSED: 422, RefusalCode.NOT_CANCELLABLE: 409, RefusalCode.PROPOSAL_EXPIRED: 409}
_MEANING = {404: "No such device, command or proposal", 409: "Not allowed in the command's current state",
            422: "The request cannot be carried out; the reason says why"}


def refusal_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the refusals a route can answer."""
    return {status: {"description": _MEANING[status]} for status in statuses}


def problem(status: int, code: str, reason: str) -> HTTPException:
    """An HTTP refusal with a problem code a client can branch on and a reason an operator can read."""
    return HTTPException(status, detail={"problem": code, "reason": reason})


def refused(refusal: Refusal) -> HTTPException:
    """The core's refusal as an HTTP answer: 404 unknown device, 409 wrong state, 422 otherwise."""
    return problem(STATUS[refusal.code], refusal.code.value, refusal.message)


async def devices_out_of_reach(session: Any, tenant: str, caller: Principal, device_ids: Iterable[str]) -> set[str]:
    """The devices of `device_ids` outside the caller's sites and duties.

    A device commands does not know yet is left to the core to refuse (404 unknown device) — unless the
    caller is limited at all, for whom an unknown device is simply out of reach.
    """
    if not caller.limited:
        return set()
    ids = list(dict.fromkeys(device_ids))
    known = await store.devices_of(session, tenant, ids)
    return {d for d in ids if (device := known.get(d)) is None
            or not caller.covers(site=device.site, utility=device.utility.value)}


def commands_settings(settings: ServiceSettings) -> CommandsSettings:
    """The commands settings of the app (the composition root may hand the runtime plain ServiceSettings)."""
    if isinstance(settings, CommandsSettings):
        return settings
    return CommandsSettings.model_validate(settings.model_dump())


class CommandView(BaseModel):
    """A command as the console shows it: the request as it was made (who and why), and where it is now."""

    command_id: UUID
    device_id: str
    kind: CommandKind
    parameter: ParameterSetting | None
    state: CommandState
    reason: CommandReason
    origin: CommandOrigin
    requested_by: str
    note: str | None
    rule_id: str | None
    account_id: str | None
    operation_id: UUID | None
    after_command_id: UUID | None
    batch_id: str | None
    idempotency_key: str | None
    priority: CommandPriority
    requested_at: datetime
    not_before: datetime | None
    holds: list[ScheduleHold]
    expires_at: datetime
    attempt: int
    send_at: datetime | None
    dispatched_at: datetime | None
    acknowledged_at: datetime | None
    ended_at: datetime | None
    detail: str | None
    updated_at: datetime


class SubmittedView(CommandView):
    """The command a request made (or, for a repeated request, the first one) and what it superseded."""

    duplicate: bool
    superseded: list[UUID]  # contradicting commands not yet sent, cancelled in its favour


_PROGRESS_FIELDS = set(Command.model_fields) - {"tenant_id", "request"}
_REQUEST_FIELDS = set(CommandView.model_fields) - _PROGRESS_FIELDS


def command_view(command: Command) -> CommandView:
    return CommandView(**command.request.model_dump(include=_REQUEST_FIELDS),
                       **command.model_dump(include=_PROGRESS_FIELDS))


async def submitted_view(desk: Desk, accepted: Accepted) -> SubmittedView:
    """The answer to an accepted request, read back from the store so a repeat shows the command as it is now."""
    command = await store.load(desk.session, desk.tenant_id, accepted.command.command_id) or accepted.command
    superseded = [t.command.command_id for t in accepted.transitions
                  if t.command.command_id != command.command_id and any(isinstance(e, CommandCancelled)
                                                                        for e in t.events)]
    return SubmittedView(**command_view(command).model_dump(), duplicate=accepted.duplicate, superseded=superseded)


@asynccontextmanager
async def console_desk(runtime: Any, tenant: str, device_ids: Iterable[str], now: datetime) -> AsyncIterator[Desk]:
    """One transaction deciding about the devices: their locks first, then the Desk; its events are staged
    in the outbox before the commit, so a command and the facts about it are kept or lost together.

    The API process does not relay (the worker's relay publishes the outbox); waking is for a process that does.
    """
    settings = commands_settings(runtime.settings)
    async with runtime.sessions() as session, session.begin():
        await lock_devices(session, tenant, device_ids)
        desk = Desk(session, tenant, settings.lifecycle, now)
        yield desk
        staged = await stage(session, db.outbox, desk.envelopes(), now)
    if staged:
        runtime.wake_relay()
