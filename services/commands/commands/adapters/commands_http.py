"""The operator console's commands: request one, find them, read one with its history, cancel one not yet sent.

Every manual command records who asked (requested_by) and why (note). Paths are under the /v1 of http.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Self
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from amiflow_runtime.http import Caller, RuntimeDep, Tenant, out_of_reach, signed_by, validated
from amiflow_schemas.events.commands import (
    CancelReason,
    CommandKind,
    CommandOrigin,
    CommandPriority,
    CommandReason,
    CommandRequested,
    ParameterSetting,
    ScheduleHold,
)
from amiflow_schemas.primitives import Identifier, Text
from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.exc import IntegrityError

from commands.adapters import store
from commands.adapters.web import (
    CommandView,
    SubmittedView,
    command_view,
    console_desk,
    devices_out_of_reach,
    problem,
    refusal_docs,
    refused,
    submitted_view,
)
from commands.core.lifecycle import cancel
from commands.core.model import CommandState, Refusal, RefusalCode, derived_command_id

router = APIRouter(tags=["commands"])

DEFAULT_TTL = timedelta(hours=2)  # an operator's command left unconfirmed this long is stale: expire and alarm
_CONSOLE_IDS = uuid5(NAMESPACE_URL, "https://amiflow.dev/commands/console")  # namespace of key-derived ids
AccountId = Annotated[Identifier, Field(max_length=64)]


class CommandWindow(BaseModel):
    """Why and when: from not_before (now if left out or past) until expires_at, or for ttl (2 h by default)."""

    model_config = ConfigDict(extra="forbid")

    reason: CommandReason = CommandReason.OPERATOR
    priority: CommandPriority = CommandPriority.NORMAL
    not_before: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    ttl: timedelta | None = Field(None, description="How long from its start it may take; instead of expires_at")

    @model_validator(mode="after")
    def _one_end(self) -> Self:
        if self.expires_at is not None and self.ttl is not None:
            raise ValueError("give expires_at or ttl, not both")
        if self.ttl is not None and self.ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        return self

    def window(self, now: datetime) -> tuple[datetime | None, datetime]:
        """(not_before while still ahead, expires_at); a window that has passed or is empty is refused."""
        held = self.not_before if self.not_before is not None and self.not_before > now else None
        start = held or now
        expires_at = self.expires_at or start + (self.ttl or DEFAULT_TTL)
        # The event cannot even hold a window that ended before it was asked: refuse it as the core does.
        if expires_at <= now:
            raise problem(422, RefusalCode.WINDOW_PASSED.value,
                          f"the command's window ended at {expires_at.isoformat()}, before now")
        if expires_at <= start:
            raise problem(422, "empty_window", f"expires_at {expires_at.isoformat()} is not after not_before"
                                               f" {start.isoformat()}")
        return held, expires_at


class OperatorCommand(CommandWindow):
    """A command an operator asks for one device."""

    device_id: Identifier
    kind: CommandKind
    parameter: ParameterSetting | None = Field(None, description="Exactly for set_parameter")
    requested_by: Identifier
    note: Text = Field(description="Why, in the operator's words")
    account_id: AccountId | None = None
    idempotency_key: Identifier | None = Field(None, description="The same key again answers the first command")


class CancelOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cancelled_by: Identifier
    reason: Text


class HistoryEntry(BaseModel):
    event_type: str
    recorded_at: datetime
    payload: dict[str, Any]


class CommandDetailView(CommandView):
    history: list[HistoryEntry]  # its lifecycle events, oldest first, as they were published


def console_command_id(tenant: str, idempotency_key: str | None) -> UUID:
    """A new id, or one derived from the key so a retry names the same command even if the first is not found."""
    return uuid4() if idempotency_key is None else derived_command_id(_CONSOLE_IDS, tenant, idempotency_key)


def operator_request(window: CommandWindow, now: datetime, *, command_id: UUID, device_id: str, kind: CommandKind,
                     parameter: ParameterSetting | None, requested_by: str, note: str, account_id: str | None = None,
                     batch_id: str | None = None, idempotency_key: str | None = None) -> CommandRequested:
    """The CommandRequested of an operator's command; 422 when it cannot be one (e.g. a parameter on a relay)."""
    not_before, expires_at = window.window(now)
    return validated(lambda: CommandRequested(
        command_id=command_id, device_id=device_id, kind=kind, parameter=parameter, reason=window.reason,
        origin=CommandOrigin.OPERATOR, requested_by=requested_by, note=note, rule_id=None, account_id=account_id,
        operation_id=None, after_command_id=None, batch_id=batch_id, idempotency_key=idempotency_key,
        priority=window.priority, requested_at=now, not_before=not_before,
        holds=(ScheduleHold.NOT_BEFORE,) if not_before else (), expires_at=expires_at), "body")


async def once_more_on_conflict(write: Callable[[], Awaitable[SubmittedView]]) -> SubmittedView:
    """Run a keyed write; if a concurrent request with the same key won the race, answer its command."""
    try:
        return await write()
    except IntegrityError:
        # Two requests with one key for different devices hold different locks; the loser's retry finds the key.
        return await write()


SUBMIT_DOCS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The idempotency key was used before: the first command", "model": SubmittedView},
    **refusal_docs(404, 422),
}


@router.post("/commands", status_code=201, response_model=SubmittedView, responses=SUBMIT_DOCS)
async def request_command(body: OperatorCommand, runtime: RuntimeDep, tenant: Tenant, caller: Caller,
                          response: Response) -> Any:
    """Ask a device to act: a contradicting command not yet sent is cancelled (latest intent wins), one already
    sent is waited for. Refused: an unknown device (404), a kind it cannot do, a removed device, a past window,
    a device outside the operator's sites and duties (403)."""
    now = runtime.clock.now()
    requested = operator_request(body, now, command_id=console_command_id(tenant, body.idempotency_key),
                                 device_id=body.device_id, kind=body.kind, parameter=body.parameter,
                                 requested_by=signed_by(caller, body.requested_by), note=body.note,
                                 account_id=body.account_id, idempotency_key=body.idempotency_key)

    async def submit() -> SubmittedView:
        async with console_desk(runtime, tenant, [body.device_id], now) as desk:
            for device in await devices_out_of_reach(desk.session, tenant, caller, [body.device_id]):
                raise out_of_reach(f"device {device}")
            result = await desk.submit(requested)
            if isinstance(result, Refusal):
                raise refused(result)
            return await submitted_view(desk, result)

    answer = await once_more_on_conflict(submit)
    response.status_code = 200 if answer.duplicate else 201
    return answer


@router.get("/commands", response_model=list[CommandView], responses=refusal_docs(422))
async def find_commands(runtime: RuntimeDep, tenant: Tenant, device_id: str | None = None,
                        state: CommandState | None = None,
                        since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
                        until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
                        batch_id: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Commands by device, state, batch and request time [from, to), newest first."""
    if since is not None and until is not None and since >= until:
        raise problem(422, "empty_period", "from must be before to")
    async with runtime.sessions() as session:
        found = await store.find(session, tenant, device_id=device_id, state=state, since=since, until=until,
                                 batch_id=batch_id, limit=limit)
    return [command_view(c) for c in found]


@router.get("/commands/{command_id}", response_model=CommandDetailView, responses=refusal_docs(404))
async def read_command(command_id: UUID, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """One command, with every lifecycle event it went through."""
    async with runtime.sessions() as session:
        command = await store.load(session, tenant, command_id)
        history = await store.history(session, tenant, command_id)
    if command is None:
        raise problem(404, "unknown_command", f"no command {command_id}")
    return CommandDetailView(**command_view(command).model_dump(), history=[HistoryEntry(**h) for h in history])


@router.post("/commands/{command_id}/cancel", response_model=CommandView, responses=refusal_docs(404, 409))
async def cancel_command(command_id: UUID, body: CancelOrder, runtime: RuntimeDep, tenant: Tenant,
                         caller: Caller) -> Any:
    """Withdraw a command not yet sent; commands queued after it are released. A sent command cannot be called
    back from the device (409): send the opposite command instead."""
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        found = await store.load(session, tenant, command_id)
    if found is None:
        raise problem(404, "unknown_command", f"no command {command_id}")
    async with console_desk(runtime, tenant, [found.device_id], now) as desk:
        command = await store.load(desk.session, tenant, command_id)  # it may have been sent before the lock
        if command is None:
            raise problem(404, "unknown_command", f"no command {command_id}")
        for device in await devices_out_of_reach(desk.session, tenant, caller, [command.device_id]):
            raise out_of_reach(f"device {device}")
        result = cancel(command, signed_by(caller, body.cancelled_by), CancelReason.OPERATOR, body.reason, now)
        if isinstance(result, Refusal):
            raise refused(result)
        await desk.take([result])
        after = await store.load(desk.session, tenant, command_id)
    return command_view(after or result.command)
