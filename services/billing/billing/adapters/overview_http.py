"""What the operators' console shows of billing at a glance: the account list (search, filter, page) and the
overview of balances, arrears and collections."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_schemas.events.accounts import CustomerKind
from amiflow_schemas.primitives import Utility
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from billing.adapters import overview_queries, store
from billing.adapters.overview_queries import AccountFilter, ListedAccount
from billing.adapters.web import billing_settings
from billing.core.accounts import Account
from billing.core.balance_state import BalanceStatus
from billing.core.overview import Overview, overview
from billing.core.periods import local_date
from billing.operations import as_money

router = APIRouter(prefix="/v1", tags=["overview"])


class ListedMeter(BaseModel):
    meter_id: str
    utility: Utility
    tariff_id: str


class ListedAccountView(BaseModel):
    account_id: str
    customer_id: str
    customer_kind: CustomerKind
    status: str  # open or closed
    balance: Decimal
    currency: str
    balance_state: BalanceStatus
    meters: list[ListedMeter]  # the meters it pays for now
    updated_at: datetime  # of the balance


class AccountPage(BaseModel):
    items: list[ListedAccountView]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last")


class AccountCounts(BaseModel):
    total: int  # open accounts
    normal: int
    low: int
    depleted: int


class Arrears(BaseModel):
    accounts: int  # open or closed, with a negative balance
    amount: Decimal  # what they owe, positive


class Collections(BaseModel):
    day: Decimal
    month: Decimal  # the day's month, through the day
    payments_day: int


class SummaryView(BaseModel):
    day: date
    currency: str
    accounts: AccountCounts
    balance_total: Decimal  # every account's balance (closed ones hold only arrears)
    arrears: Arrears
    collections: Collections


def _listed(row: ListedAccount, account: Account | None, now: datetime) -> ListedAccountView:
    meters = [ListedMeter(meter_id=link.meter_id, utility=link.utility, tariff_id=link.tariff_id)
              for link in (account.meters_at(now) if account else ())]
    return ListedAccountView(account_id=row.account_id, customer_id=row.customer_id,
                             customer_kind=CustomerKind(row.customer_kind), status=row.status,
                             balance=as_money(row.balance), currency=row.currency,
                             balance_state=BalanceStatus(row.balance_state), meters=meters, updated_at=row.updated_at)


@router.get("/accounts", response_model=AccountPage)
async def list_accounts(runtime: RuntimeDep, tenant: Tenant,
                        q: Annotated[str | None, Query(min_length=1, max_length=128,
                                                       description="Prefix of the account or customer id")] = None,
                        balance_state: BalanceStatus | None = None,
                        meter_id: Annotated[str | None, Query(max_length=128, description="The account paying "
                                                              "for this meter")] = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 50,
                        after: Annotated[str | None, Query(max_length=128, description="The `next` of the previous "
                                                           "page")] = None) -> Any:
    """The tenant's accounts in account id order, a page at a time (customers read their own at /v1/accounts/{id})."""
    now = runtime.clock.now()
    criteria = AccountFilter(prefix=q, balance_state=balance_state, meter_id=meter_id, after=after)
    async with runtime.sessions() as session:
        page, cursor = await overview_queries.account_page(session, tenant, criteria, limit, now)
        accounts = await store.load_accounts(session, tenant, [row.account_id for row in page])
    return AccountPage(items=[_listed(row, accounts.get(row.account_id), now) for row in page], next=cursor)


def summary_view(found: Overview, currency: str) -> SummaryView:
    states = found.open_by_state
    return SummaryView(
        day=found.day, currency=currency,
        accounts=AccountCounts(total=found.open_accounts, normal=states[BalanceStatus.NORMAL],
                               low=states[BalanceStatus.LOW], depleted=states[BalanceStatus.DEPLETED]),
        balance_total=found.balance_total, arrears=Arrears(accounts=found.arrears_accounts,
                                                           amount=found.arrears_amount),
        collections=Collections(day=found.collected_day, month=found.collected_month,
                                payments_day=found.payments_day))


@router.get("/summary", response_model=SummaryView)
async def summary(runtime: RuntimeDep, tenant: Tenant,
                  day: Annotated[date | None, Query(description="A local day; today if left out")] = None) -> Any:
    """Accounts by balance state, the balances held, arrears, and the day's and month's collections."""
    settings = billing_settings(runtime.settings)
    currency = settings.currency_of(tenant)
    day = day or local_date(runtime.clock.now(), ZoneInfo(settings.zone_of(tenant)))
    async with runtime.sessions() as session:
        balances = await overview_queries.balances(session, tenant, currency)
        payments = await overview_queries.payments(session, tenant, currency, day.replace(day=1), day)
    return summary_view(overview(day, balances, payments), currency)
