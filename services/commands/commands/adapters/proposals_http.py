"""Proposals of automation rules: the open ones, and an operator's acceptance, which requests the command.

The command names both the rule and the operator (and their reason). Accepting twice answers the first command.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from amiflow_runtime.http import Caller, RuntimeDep, Tenant, out_of_reach, signed_by
from amiflow_schemas.events.commands import CommandProposed
from amiflow_schemas.primitives import Identifier, Text
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from commands.adapters import store
from commands.adapters.commands_http import DEFAULT_TTL, once_more_on_conflict
from commands.adapters.web import (
    SubmittedView,
    command_view,
    console_desk,
    devices_out_of_reach,
    problem,
    refusal_docs,
    refused,
    submitted_view,
)
from commands.core.automation import accept_proposal
from commands.core.model import Refusal

router = APIRouter(tags=["proposals"])


class Acceptance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator_id: Identifier
    why: Text


@router.get("/proposals", response_model=list[CommandProposed])
async def open_proposals(runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Proposals no operator has accepted yet and that have not lapsed, oldest first."""
    async with runtime.sessions() as session:
        return await store.open_proposals(session, tenant, runtime.clock.now())


ACCEPT_DOCS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Accepted before: the first command", "model": SubmittedView},
    **refusal_docs(404, 409, 422),
}


@router.post("/proposals/{proposal_id}/accept", status_code=201, response_model=SubmittedView,
             responses=ACCEPT_DOCS)
async def accept(proposal_id: UUID, body: Acceptance, runtime: RuntimeDep, tenant: Tenant, caller: Caller,
                 response: Response) -> Any:
    """Request the proposed command; a lapsed proposal is refused (409), as is a device that cannot do it."""
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        found = await store.proposal(session, tenant, proposal_id)
        rules = await store.rules(session, tenant)
    if found is None:
        raise problem(404, "unknown_proposal", f"no proposal {proposal_id}")
    proposal = found[0]
    # The command stays open as long as its rule says; a rule removed since gets the console's default.
    ttl = next((r.ttl for r in rules if r.rule_id == proposal.rule_id), DEFAULT_TTL)

    async def carry_out() -> SubmittedView:
        async with console_desk(runtime, tenant, [proposal.device_id], now) as desk:
            for device in await devices_out_of_reach(desk.session, tenant, caller, [proposal.device_id]):
                raise out_of_reach(f"device {device}")
            earlier = await _accepted_before(desk.session, tenant, proposal)
            if earlier is not None:
                return earlier
            requested = accept_proposal(proposal, signed_by(caller, body.operator_id), body.why, now, ttl)
            if isinstance(requested, Refusal):
                raise refused(requested)
            result = await desk.submit(requested)
            if isinstance(result, Refusal):
                raise refused(result)
            await store.accepted(desk.session, tenant, proposal_id, result.command.command_id)
            return await submitted_view(desk, result)

    answer = await once_more_on_conflict(carry_out)
    response.status_code = 200 if answer.duplicate else 201
    return answer


async def _accepted_before(session: Any, tenant: str, proposal: CommandProposed) -> SubmittedView | None:
    """The command an earlier acceptance requested, even if the proposal has lapsed since."""
    found = await store.proposal(session, tenant, proposal.proposal_id)
    command_id = found[2] if found else None
    command = await store.load(session, tenant, command_id) if command_id else None
    if command is None:
        return None
    return SubmittedView(**command_view(command).model_dump(), duplicate=True, superseded=[])
