"""Commands' API: the account supply intents, and the operator console (commands, batches, configuration,
proposals, service operations), each in its own module and served under /v1."""

from __future__ import annotations

from datetime import datetime

from amiflow_runtime.auth import ACCOUNT_DATA
from amiflow_runtime.http import RuntimeDep, Tenant
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from commands.adapters import (
    batch_http,
    commands_http,
    configuration_http,
    db,
    operations_http,
    proposals_http,
)


class AccountSupplyView(BaseModel):
    """The supply intent the balance events set for an account."""

    account_id: str
    intent: str
    since: datetime
    meter_ids: list[str]


router = APIRouter(prefix="/v1", tags=["supply"])


@router.get("/accounts/{account_id}/supply", openapi_extra=ACCOUNT_DATA, response_model=AccountSupplyView,
            responses={404: {"description": "No balance event of this account has reached commands"}})
async def account_supply(account_id: str, runtime: RuntimeDep, tenant: Tenant) -> AccountSupplyView:
    """Whether the account's supply should be cut off or restored, and since when."""
    async with runtime.sessions() as session:
        state = await db.load(session, tenant, account_id)
    if state is None:
        raise HTTPException(404, detail=f"no balance state of account {account_id} has reached commands")
    return AccountSupplyView(account_id=state.account_id, intent=state.intent.value, since=state.since,
                             meter_ids=list(state.meter_ids))


for console in (batch_http, commands_http, configuration_http, proposals_http, operations_http):
    router.include_router(console.router)
