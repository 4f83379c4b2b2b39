"""Service operations as command sequences: account opened, move-out, meter replacement, parameter download.

The core plans the steps; every step is submitted in order in one transaction, a step queued after another
goes out once that one has ended. Steps a device cannot do are answered as skipped, with why. An idempotency
key names the operation, so sending it again answers the same commands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Self
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_schemas.events.commands import CommandKind, ParameterSetting
from amiflow_schemas.primitives import Identifier, Text
from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from commands.adapters import store
from commands.adapters.web import (
    CommandView,
    SubmittedView,
    commands_settings,
    console_desk,
    problem,
    refusal_docs,
    submitted_view,
)
from commands.core import operations
from commands.core.capabilities import Device
from commands.core.model import Refusal, derived_command_id
from commands.core.operations import OperationContext, OperationPlan
from commands.desk import Desk

router = APIRouter(prefix="/operations", tags=["service operations"])

# Meters that wake a few times a day: each step's window must span several of their wake-ups.
OPERATION_TTL = timedelta(days=2)
_OPERATION_IDS = uuid5(NAMESPACE_URL, "https://amiflow.dev/commands/operations")  # namespace of key-derived ids
AccountId = Annotated[Identifier, Field(max_length=64)]
Planner = Callable[[Sequence[Device], OperationContext], OperationPlan]


class OperationOrder(BaseModel):
    """Who runs the operation and why."""

    model_config = ConfigDict(extra="forbid")

    requested_by: Identifier
    note: Text
    ttl: timedelta = Field(OPERATION_TTL, description="How long each step stays open from its start")
    idempotency_key: Identifier | None = Field(None, description="The same key again answers the same commands")

    @model_validator(mode="after")
    def _positive_ttl(self) -> Self:
        if self.ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        return self


class AccountDevices(OperationOrder):
    account_id: AccountId
    device_ids: Annotated[list[Identifier], Field(min_length=1, max_length=256)]


class MeterReplacement(OperationOrder):
    account_id: AccountId | None = None
    old_device_id: Identifier
    new_device_id: Identifier

    @model_validator(mode="after")
    def _two_meters(self) -> Self:
        if self.old_device_id == self.new_device_id:
            raise ValueError("the old and the new meter are different devices")
        return self


class ParameterDownload(OperationOrder):
    account_id: AccountId | None = None
    device_ids: Annotated[list[Identifier], Field(min_length=1, max_length=1000)]
    parameter: ParameterSetting
    not_before: AwareDatetime | None = Field(None, description="Not written before; now if left out")


class SkippedView(BaseModel):
    device_id: str
    reason: str


class RefusedStepView(BaseModel):
    device_id: str
    kind: CommandKind
    problem: str
    reason: str


class OperationView(BaseModel):
    operation_id: UUID
    commands: list[CommandView]  # the steps, in the order they were planned
    skipped: list[SkippedView]  # what the devices cannot do, to be done on site
    refused: list[RefusedStepView]  # steps the devices refused (e.g. removed), and the steps that waited for them


def operation_id(tenant: str, operation: str, idempotency_key: str | None) -> UUID:
    return uuid4() if idempotency_key is None else derived_command_id(_OPERATION_IDS, tenant, operation,
                                                                       idempotency_key)


async def _carry_out(runtime: Any, tenant: str, operation: str, order: OperationOrder, account_id: str | None,
                     device_ids: Sequence[str], plan: Planner, response: Response) -> OperationView:
    now: datetime = runtime.clock.now()
    ctx = OperationContext(operation_id(tenant, operation, order.idempotency_key), order.requested_by, order.note,
                           now, order.ttl, account_id)
    ids = list(dict.fromkeys(device_ids))
    async with console_desk(runtime, tenant, ids, now) as desk:
        found = await store.devices_of(desk.session, tenant, ids)
        unknown = [d for d in ids if d not in found]
        if unknown:
            raise problem(404, "unknown_device", f"no device {', '.join(unknown[:20])} in the registry")
        planned = plan([found[d] for d in ids], ctx)
        commands, refused = await _submit_in_order(desk, planned)
    response.status_code = 201 if any(not c.duplicate for c in commands) else 200
    return OperationView(operation_id=ctx.operation_id, commands=[CommandView(**c.model_dump()) for c in commands],
                         skipped=[SkippedView(device_id=d, reason=why) for d, why in planned.skipped],
                         refused=refused)


async def _submit_in_order(desk: Desk, planned: OperationPlan) -> tuple[list[SubmittedView], list[RefusedStepView]]:
    commands: list[SubmittedView] = []
    refused: list[RefusedStepView] = []
    failed: set[UUID] = set()
    for step in planned.requests:
        if step.after_command_id in failed:
            # It would wait for a command that will never exist, and expire; refuse it with the step before.
            failed.add(step.command_id)
            refused.append(RefusedStepView(device_id=step.device_id, kind=step.kind, problem="step_before_refused",
                                           reason=f"it waits for step {step.after_command_id}, which was refused"))
            continue
        result = await desk.submit(step)
        if isinstance(result, Refusal):
            failed.add(step.command_id)
            refused.append(RefusedStepView(device_id=step.device_id, kind=step.kind, problem=result.code.value,
                                           reason=result.message))
        else:
            commands.append(await submitted_view(desk, result))
    return commands, refused


OPERATION_DOCS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Nothing new: the operation was sent before (same key), or every step was skipped",
          "model": OperationView},
    **refusal_docs(404),
}


@router.post("/account-opened", status_code=201, response_model=OperationView, responses=OPERATION_DOCS)
async def account_opened(body: AccountDevices, runtime: RuntimeDep, tenant: Tenant, response: Response) -> Any:
    """Open each valve and let each relay close (as the tenant's policy restores), so the new customer has supply."""
    async with runtime.sessions() as session:
        found = await store.policy(session, tenant)
    relay_restore = (found[0] if found else commands_settings(runtime.settings).default_policy).relay_restore
    return await _carry_out(runtime, tenant, "account-opened", body, body.account_id, body.device_ids,
                            lambda devices, ctx: operations.account_opened(devices, ctx, relay_restore), response)


@router.post("/move-out", status_code=201, response_model=OperationView, responses=OPERATION_DOCS)
async def move_out(body: AccountDevices, runtime: RuntimeDep, tenant: Tenant, response: Response) -> Any:
    """A final read of each meter, then its valve closed or relay tripped once the read has ended."""
    return await _carry_out(runtime, tenant, "move-out", body, body.account_id, body.device_ids,
                            operations.move_out, response)


@router.post("/meter-replacement", status_code=201, response_model=OperationView, responses=OPERATION_DOCS)
async def meter_replacement(body: MeterReplacement, runtime: RuntimeDep, tenant: Tenant, response: Response) -> Any:
    """A final read of the old meter, then a first read of the new one."""
    return await _carry_out(runtime, tenant, "meter-replacement", body, body.account_id,
                            [body.old_device_id, body.new_device_id],
                            lambda devices, ctx: operations.meter_replacement(devices[0], devices[1], ctx), response)


@router.post("/parameter-download", status_code=201, response_model=OperationView, responses=OPERATION_DOCS)
async def parameter_download(body: ParameterDownload, runtime: RuntimeDep, tenant: Tenant,
                             response: Response) -> Any:
    """Write one parameter (a price, a limit) to many meters at routine priority, from not_before on; meters that
    run offline take it at their next wake-up within the window."""
    return await _carry_out(runtime, tenant, "parameter-download", body, body.account_id, body.device_ids,
                            lambda devices, ctx: operations.parameter_download(devices, body.parameter, ctx,
                                                                               body.not_before), response)
