"""Batch commands from the console: one kind for many devices (or a kind per line), answered line by line.

Lines are submitted in order in one transaction, each seeing what the lines before it did. Each line is
idempotent on (batch id, device): sending the batch again answers every line with its first command.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Self

from amiflow_runtime.http import Caller, RuntimeDep, Tenant, signed_by
from amiflow_schemas.events.commands import CommandKind, ParameterSetting
from amiflow_schemas.primitives import Identifier, Text
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from commands.adapters.commands_http import CommandWindow, console_command_id, operator_request
from commands.adapters.web import CommandView, console_desk, devices_out_of_reach, refusal_docs, submitted_view
from commands.core.model import Refusal
from commands.desk import Desk

router = APIRouter(tags=["commands"])

MAX_LINES = 1000
BatchId = Annotated[Identifier, Field(max_length=64)]


class BatchLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: Identifier
    kind: CommandKind | None = Field(None, description="The batch's kind if left out")
    parameter: ParameterSetting | None = Field(None, description="The batch's parameter if left out")


class CommandBatch(CommandWindow):
    """One command per device, from one operator with one reason; device_ids or lines, not both."""

    batch_id: BatchId
    requested_by: Identifier
    note: Text
    kind: CommandKind | None = Field(None, description="Every line's, unless a line names its own")
    parameter: ParameterSetting | None = None
    device_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_LINES)] | None = None
    lines: Annotated[list[BatchLine], Field(min_length=1, max_length=MAX_LINES)] | None = None

    @model_validator(mode="after")
    def _one_command_per_device(self) -> Self:
        if (self.device_ids is None) == (self.lines is None):
            raise ValueError("give device_ids or lines, not both")
        lines = self.lines or [BatchLine(device_id=d) for d in self.device_ids or ()]
        if any(line.kind is None and self.kind is None for line in lines):
            raise ValueError("every line needs a kind: the batch's or its own")
        devices = [line.device_id for line in lines]
        twice = sorted({d for d in devices if devices.count(d) > 1})
        if twice:  # (batch, device) is the idempotency key: a second line would answer the first one's command
            raise ValueError(f"one line per device; more than one for {', '.join(twice[:10])}")
        return self

    def orders(self) -> list[LineOrder]:
        """The lines with the batch's kind and parameter filled in."""
        lines = self.lines or [BatchLine(device_id=d) for d in self.device_ids or ()]
        return [LineOrder(line.device_id, kind, line.parameter or self.parameter)
                for line in lines if (kind := line.kind or self.kind) is not None]


@dataclass(frozen=True)
class LineOrder:
    """One line as it is submitted."""

    device_id: str
    kind: CommandKind
    parameter: ParameterSetting | None


class LineStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the batch was sent before: the line's first command
    REFUSED = "refused"


class LineView(BaseModel):
    device_id: str
    kind: CommandKind
    status: LineStatus
    command: CommandView | None
    problem: str | None = None
    reason: str | None = None


class BatchView(BaseModel):
    batch_id: str
    accepted: int
    duplicate: int
    refused: int
    lines: list[LineView]


def batch_key(batch_id: str, device_id: str) -> str:
    """The idempotency key of a batch line; hashed when the plain form would not fit a key (128 characters)."""
    key = f"batch:{batch_id}:{device_id}"
    if len(key) <= 128:
        return key
    digest = hashlib.sha256("\x1f".join((batch_id, device_id)).encode()).hexdigest()
    return f"batch:{digest}"


async def _line(desk: Desk, body: CommandBatch, line: LineOrder, beyond: set[str]) -> LineView:
    kind = line.kind
    if line.device_id in beyond:
        return LineView(device_id=line.device_id, kind=kind, status=LineStatus.REFUSED, command=None,
                        problem="out_of_reach",
                        reason=f"device {line.device_id} is outside your sites and duties")
    key = batch_key(body.batch_id, line.device_id)
    try:
        requested = operator_request(body, desk.now, command_id=console_command_id(desk.tenant_id, key),
                                     device_id=line.device_id, kind=kind, parameter=line.parameter,
                                     requested_by=body.requested_by, note=body.note, batch_id=body.batch_id,
                                     idempotency_key=key)
    except RequestValidationError as exc:
        reason = "; ".join(str(e.get("msg", "")) for e in exc.errors())
        return LineView(device_id=line.device_id, kind=kind, status=LineStatus.REFUSED, command=None,
                        problem="invalid_request", reason=reason)
    result = await desk.submit(requested)
    if isinstance(result, Refusal):
        return LineView(device_id=line.device_id, kind=kind, status=LineStatus.REFUSED, command=None,
                        problem=result.code.value, reason=result.message)
    view = await submitted_view(desk, result)
    return LineView(device_id=line.device_id, kind=kind, command=CommandView(**view.model_dump()),
                    status=LineStatus.DUPLICATE if result.duplicate else LineStatus.ACCEPTED)


@router.post("/commands/batch", response_model=BatchView, responses=refusal_docs(422))
async def request_batch(body: CommandBatch, runtime: RuntimeDep, tenant: Tenant, caller: Caller) -> Any:
    """Up to 1000 commands, answered line by line (accepted, duplicate, or refused with the reason); a window
    that has passed refuses the whole batch."""
    now = runtime.clock.now()
    lines = body.orders()
    body.window(now)  # the window is the batch's: a passed one refuses it before any line is tried
    signed_by(caller, body.requested_by)
    async with console_desk(runtime, tenant, [line.device_id for line in lines], now) as desk:
        beyond = await devices_out_of_reach(desk.session, tenant, caller, [line.device_id for line in lines])
        answers = [await _line(desk, body, line, beyond) for line in lines]
    count = {status: sum(1 for a in answers if a.status is status) for status in LineStatus}
    return BatchView(batch_id=body.batch_id, accepted=count[LineStatus.ACCEPTED],
                     duplicate=count[LineStatus.DUPLICATE], refused=count[LineStatus.REFUSED], lines=answers)
