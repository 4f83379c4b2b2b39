"""An account's money as billing holds it: balance, ledger, daily settlements; and readings nobody pays for."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from amiflow_runtime.auth import ACCOUNT_DATA
from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_schemas.events.billing import DailySettled
from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from billing import operations
from billing.adapters import rating_db, store
from billing.adapters.web import answering_refusals, refusal_docs
from billing.core.ledger import LedgerEntry, balance_effect, business_day
from billing.operations import Refusal, as_money

router = APIRouter(prefix="/v1", tags=["ledger"])


class BalanceView(BaseModel):
    account_id: str
    balance: Decimal
    status: str  # normal, low or depleted
    currency: str
    settled_through: date | None  # the last settled local day
    updated_at: datetime


class LedgerEntryView(BaseModel):
    event_id: UUID
    event_type: str
    recorded_at: datetime
    business_day: date  # the local day whose settlement counts it
    amount: Decimal  # as the event states it
    effect: Decimal  # on the balance: credit > 0, debit < 0
    currency: str
    payload: dict[str, Any]


class UnbilledReadingView(BaseModel):
    event_id: str
    meter_id: str
    measured_at: datetime
    reason: str
    held_at: datetime


@router.get("/accounts/{account_id}/balance", openapi_extra=ACCOUNT_DATA, response_model=BalanceView,
            responses=refusal_docs(Refusal.NOT_FOUND))
async def balance(account_id: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """The balance (the ledger's fold), its state and the last settled day."""
    with answering_refusals():
        async with runtime.sessions() as session:
            await operations.account_of(session, tenant, account_id)
            row = await store.balance_of(session, tenant, account_id)
    assert row is not None  # opening an account creates its balance row
    return BalanceView(**{**row, "balance": as_money(row["balance"])})


@router.get("/accounts/{account_id}/ledger", openapi_extra=ACCOUNT_DATA, response_model=list[LedgerEntryView],
            responses=refusal_docs(Refusal.NOT_FOUND))
async def ledger(account_id: str, runtime: RuntimeDep, tenant: Tenant,
                 since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
                 until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 1000) -> Any:
    """Ledger entries recorded in [from, to), oldest first."""
    with answering_refusals():
        async with runtime.sessions() as session:
            account = await operations.account_of(session, tenant, account_id)
            events = await store.ledger(session, tenant, account_id, since, until, limit)
    return [LedgerEntryView(event_id=e.event_id, event_type=e.event_type, recorded_at=e.recorded_at,
                            business_day=business_day(LedgerEntry(e.event_id, e.recorded_at, e.payload), account.zone),
                            amount=e.payload.amount, effect=balance_effect(e.payload), currency=e.payload.currency,
                            payload=e.payload.model_dump(mode="json"))
            for e in events]


@router.get("/accounts/{account_id}/settlements", openapi_extra=ACCOUNT_DATA, response_model=list[DailySettled],
            responses=refusal_docs(Refusal.NOT_FOUND))
async def settlements(account_id: str, runtime: RuntimeDep, tenant: Tenant,
                      first: Annotated[date | None, Query(alias="from")] = None,
                      last: Annotated[date | None, Query(alias="to")] = None) -> Any:
    """The DailySettled of the local days from..to (inclusive), oldest first."""
    with answering_refusals():
        async with runtime.sessions() as session:
            await operations.account_of(session, tenant, account_id)
            return await store.settlements(session, tenant, account_id, first, last)


@router.get("/unbilled-readings", response_model=list[UnbilledReadingView])
async def unbilled_readings(runtime: RuntimeDep, tenant: Tenant, meter_id: str | None = None) -> Any:
    """Validated readings held because no account paid for their meter when they were measured."""
    async with runtime.sessions() as session:
        return await rating_db.held(session, tenant, meter_id)
