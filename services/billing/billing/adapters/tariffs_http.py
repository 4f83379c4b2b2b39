"""Tariffs as versioned data: publish a version, list the tariffs, look at one with all its versions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from amiflow_runtime.auth import CONFIGURATION
from amiflow_runtime.http import RuntimeDep, Tenant, validated
from amiflow_schemas.events.tariffs import RecurringCharge, RegisterPrice, TariffPublished, TariffTier, TierPeriod
from amiflow_schemas.primitives import NonNegativeDecimal, Text, Unit, Utility
from fastapi import APIRouter, HTTPException
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from billing import operations
from billing.adapters import queries, store
from billing.adapters.web import StoredId, answering_refusals, billing_settings, refusal_docs
from billing.core.tariffs import Tariff
from billing.operations import Refusal

router = APIRouter(prefix="/v1", tags=["tariffs"])


class PublishTariff(BaseModel):
    """One version of a tariff: step prices (tiers) or time-of-use prices (register_prices), not both."""

    model_config = ConfigDict(extra="forbid")

    tariff_id: StoredId
    version_id: StoredId
    utility: Utility
    unit: Unit
    currency: str | None = Field(None, description="The tenant's currency if left out; no other is accepted")
    tier_period: TierPeriod = TierPeriod.CALENDAR_YEAR
    effective_from: AwareDatetime
    tiers: Annotated[list[TariffTier], Field(max_length=16)] = []
    register_prices: Annotated[list[RegisterPrice], Field(max_length=4)] = []
    fixed_daily_charge: NonNegativeDecimal = Decimal(0)
    recurring_charges: Annotated[list[RecurringCharge], Field(max_length=16)] = []
    description: Text | None = None


class TariffVersionView(BaseModel):
    version_id: str
    effective_from: datetime
    tiers: list[TariffTier]
    register_prices: list[RegisterPrice]
    fixed_daily_charge: Decimal
    recurring_charges: list[RecurringCharge]


class TariffView(BaseModel):
    tariff_id: str
    utility: Utility
    unit: Unit
    currency: str
    tier_period: TierPeriod
    versions: list[TariffVersionView]  # in effective order


def tariff_view(tariff: Tariff) -> TariffView:
    return TariffView(tariff_id=tariff.tariff_id, utility=tariff.utility, unit=tariff.unit, currency=tariff.currency,
                      tier_period=tariff.tier_period, versions=[
                          TariffVersionView(version_id=v.version_id, effective_from=v.effective_from,
                                            tiers=list(v.tiers), register_prices=list(v.register_prices),
                                            fixed_daily_charge=v.fixed_daily_charge,
                                            recurring_charges=list(v.recurring_charges))
                          for v in tariff.versions])


@router.post("/tariffs", openapi_extra=CONFIGURATION, status_code=201, response_model=TariffView,
             responses=refusal_docs(Refusal.CONFLICT, Refusal.INVALID))
async def publish_tariff(body: PublishTariff, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Publish a version; a new version of an existing tariff takes effect now or later, never earlier."""
    settings, now = billing_settings(runtime.settings), runtime.clock.now()
    currency = settings.currency_of(tenant)
    published = validated(lambda: TariffPublished.model_validate(
        {**body.model_dump(), "currency": body.currency or currency, "published_at": now}), "body")
    with answering_refusals():
        async with runtime.sessions() as session, session.begin():
            tariff = await operations.publish_tariff(session, tenant, published, currency, now)
    return tariff_view(tariff)


@router.get("/tariffs", response_model=list[TariffView])
async def list_tariffs(runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Every tariff of the tenant with all its versions, by tariff id."""
    async with runtime.sessions() as session:
        found = await store.load_tariffs(session, tenant, await queries.tariff_ids(session, tenant))
    return [tariff_view(tariff) for tariff in found.values()]


@router.get("/tariffs/{tariff_id}", response_model=TariffView, responses={404: {"description": "No such tariff"}})
async def get_tariff(tariff_id: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    async with runtime.sessions() as session:
        tariff = await store.load_tariff(session, tenant, tariff_id)
    if tariff is None:
        raise HTTPException(404, detail={"problem": "unknown_tariff", "reason": f"no tariff {tariff_id}"})
    return tariff_view(tariff)
