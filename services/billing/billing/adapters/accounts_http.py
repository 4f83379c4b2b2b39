"""Prepaid accounts: open, look at, change settings, link and unlink meters, move out, change rooms."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from amiflow_runtime.auth import ACCOUNT_DATA
from amiflow_runtime.http import RuntimeDep, Tenant, validated
from amiflow_schemas.events.accounts import AccountSettings, CustomerKind, ExemptionWindow, LinkReason
from amiflow_schemas.events.billing import DailySettled
from amiflow_schemas.primitives import Identifier, NonNegativeDecimal, PositiveDecimal, Utility
from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from billing import operations
from billing.adapters.web import StoredId, answering_refusals, billing_settings, refusal_docs
from billing.core.accounts import Account
from billing.operations import Refusal, as_money

router = APIRouter(prefix="/v1", tags=["accounts"])


class SettingsBody(BaseModel):
    """An account's settings; what is left out takes the default shown."""

    model_config = ConfigDict(extra="forbid")

    credit_limit: NonNegativeDecimal = Decimal(0)
    low_balance_amount: NonNegativeDecimal = Decimal(0)
    low_balance_days: Annotated[int, Field(ge=0, le=366)] = 0
    restore_threshold: Decimal = Decimal(0)
    tier_size_factor: PositiveDecimal = Decimal(1)
    cut_off_policy_id: Identifier | None = None
    exemptions: Annotated[list[ExemptionWindow], Field(max_length=32)] = []

    def settings(self, *location: str) -> AccountSettings:
        fields = self.model_dump(include=set(AccountSettings.model_fields))
        return validated(lambda: AccountSettings.model_validate(fields), "body", *location)


class OpenAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: StoredId
    customer_id: Identifier
    customer_kind: CustomerKind
    settings: SettingsBody = SettingsBody()
    billing_year_start: date | None = Field(None, description="Anchors billing-year tiers; the opening day if left out")


class ChangeSettings(SettingsBody):
    changed_by: Identifier


class LinkMeter(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    meter_id: StoredId
    utility: Utility
    tariff_id: StoredId
    linked_from: AwareDatetime | None = Field(None, alias="from", description="From when it pays; now if left out")
    reason: LinkReason = LinkReason.CONNECTED


class RoomChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_account_id: Identifier
    meter_ids: Annotated[list[Identifier], Field(min_length=1, max_length=256)]


class MeterLinkView(BaseModel):
    meter_id: str
    utility: Utility
    tariff_id: str
    linked_at: datetime
    unlinked_at: datetime | None
    active: bool


class AccountView(BaseModel):
    account_id: str
    customer_id: str
    customer_kind: CustomerKind
    currency: str
    time_zone: str
    billing_year_start: date
    opened_at: datetime
    status: str
    closed_at: datetime | None
    settings: AccountSettings
    meters: list[MeterLinkView]  # every link ever, in link order; ``active`` ones are paid for now


class MoveOutView(BaseModel):
    account: AccountView
    refunded: Decimal  # 0 when nothing positive was left
    final_balance: Decimal  # 0 after the refund; negative arrears stay on the closed account
    settlement: DailySettled  # of the move-out day


class RoomChangeView(BaseModel):
    source: AccountView
    target: AccountView


def account_view(account: Account, now: datetime) -> AccountView:
    links = [MeterLinkView(meter_id=link.meter_id, utility=link.utility, tariff_id=link.tariff_id,
                           linked_at=link.linked_at, unlinked_at=link.unlinked_at, active=link.active_at(now))
             for link in account.links]
    return AccountView(account_id=account.account_id, customer_id=account.customer_id,
                       customer_kind=account.customer_kind, currency=account.currency, time_zone=account.time_zone,
                       billing_year_start=account.billing_year_start, opened_at=account.opened_at,
                       status=account.status.value, closed_at=account.closed_at, settings=account.settings,
                       meters=links)


@router.post("/accounts", status_code=201, response_model=AccountView,
             responses=refusal_docs(Refusal.CONFLICT, Refusal.INVALID))
async def open_account(body: OpenAccount, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Open an account with a zero balance, in the tenant's currency and time zone."""
    settings, now = billing_settings(runtime.settings), runtime.clock.now()
    with answering_refusals():
        async with runtime.sessions() as session, session.begin():
            account = await operations.open_account(
                session, tenant, body.account_id, body.customer_id, body.customer_kind,
                body.settings.settings("settings"), body.billing_year_start, settings.currency_of(tenant),
                settings.zone_of(tenant), now)
    return account_view(account, now)


@router.get("/accounts/{account_id}", openapi_extra=ACCOUNT_DATA, response_model=AccountView,
            responses=refusal_docs(Refusal.NOT_FOUND))
async def get_account(account_id: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    with answering_refusals():
        async with runtime.sessions() as session:
            account = await operations.account_of(session, tenant, account_id)
    return account_view(account, runtime.clock.now())


@router.put("/accounts/{account_id}/settings", response_model=AccountView,
            responses=refusal_docs(Refusal.NOT_FOUND, Refusal.CONFLICT))
async def change_settings(account_id: str, body: ChangeSettings, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Replace the settings as a whole; the balance is assessed against the new thresholds at once."""
    now = runtime.clock.now()
    settings = body.settings()
    with answering_refusals():
        async with runtime.sessions() as session, session.begin():
            account = await operations.change_settings(session, tenant, account_id, settings, body.changed_by, now)
    return account_view(account, now)


@router.post("/accounts/{account_id}/meters", status_code=201, response_model=AccountView,
             responses=refusal_docs(Refusal.NOT_FOUND, Refusal.CONFLICT, Refusal.INVALID))
async def link_meter(account_id: str, body: LinkMeter, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """The account pays for the meter from ``from`` at a published tariff of the meter's service."""
    now = runtime.clock.now()
    with answering_refusals():
        async with runtime.sessions() as session, session.begin():
            account = await operations.link_meter(session, tenant, account_id, body.meter_id, body.utility,
                                                  body.tariff_id, body.linked_from or now, body.reason, now)
    return account_view(account, now)


@router.delete("/accounts/{account_id}/meters/{meter_id}", response_model=AccountView,
               responses=refusal_docs(Refusal.NOT_FOUND, Refusal.CONFLICT))
async def unlink_meter(account_id: str, meter_id: str, runtime: RuntimeDep, tenant: Tenant,
                       at: AwareDatetime | None = None, reason: LinkReason = LinkReason.OPERATOR) -> Any:
    """The account stops paying for the meter at ``at`` (now if left out)."""
    now = runtime.clock.now()
    with answering_refusals():
        async with runtime.sessions() as session, session.begin():
            account = await operations.unlink_meter(session, tenant, account_id, meter_id, at or now, reason, now)
    return account_view(account, now)


@router.post("/accounts/{account_id}/move-out", response_model=MoveOutView,
             responses=refusal_docs(Refusal.NOT_FOUND, Refusal.CONFLICT))
async def move_out(account_id: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Settle today, refund the positive balance, unlink every meter and close; earlier days must be settled."""
    now = runtime.clock.now()
    with answering_refusals():
        async with runtime.sessions() as session, session.begin():
            account, final = await operations.move_out(session, tenant, account_id, now)
    refunded = final.refund.amount if final.refund else Decimal(0)
    return MoveOutView(account=account_view(account, now), refunded=as_money(refunded),
                       final_balance=as_money(final.closed.final_balance), settlement=final.settlement)


@router.post("/accounts/{account_id}/room-change", response_model=RoomChangeView,
             responses=refusal_docs(Refusal.NOT_FOUND, Refusal.CONFLICT, Refusal.INVALID))
async def change_room(account_id: str, body: RoomChange, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Move meters and the whole balance (debt included) to another account; each side names the other."""
    now = runtime.clock.now()
    with answering_refusals():
        async with runtime.sessions() as session, session.begin():
            source, target = await operations.change_room(session, tenant, account_id, body.target_account_id,
                                                          body.meter_ids, now)
    return RoomChangeView(source=account_view(source, now), target=account_view(target, now))
