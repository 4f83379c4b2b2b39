"""Rule versions for analysts: publish a new effective-dated version, list what is in force."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from amiflow_runtime.auth import CONFIGURATION
from amiflow_runtime.http import RuntimeDep, Tenant
from fastapi import APIRouter, HTTPException
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from vee.adapters import rules_db
from vee.core.rules import ObjectGroups, RuleVersion, VeeParameters

router = APIRouter(prefix="/v1", tags=["rules"])


class Scope(BaseModel):
    """The meters a version applies to; a field left out matches every meter."""

    model_config = ConfigDict(extra="forbid")

    customer_type: str | None = Field(default=None, max_length=64)
    meter_model: str | None = Field(default=None, max_length=64)
    district: str | None = Field(default=None, max_length=64)


class RuleVersionBody(BaseModel):
    """A new version: the parameters it changes (the others keep the spec's defaults)."""

    # Stored state ignores unknown keys for rolling deploys; a request must not: a misspelt
    # parameter would otherwise be dropped silently and the default would go on applying.
    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@/-]+$")
    effective_from: AwareDatetime
    scope: Scope = Scope()
    parameters: dict[str, Any] = {}
    published_by: str = Field(min_length=1, max_length=128)


class RuleVersionView(BaseModel):
    rule_id: str
    effective_from: datetime
    scope: dict[str, Any]
    parameters: dict[str, Any]
    published_by: str
    published_at: datetime


@router.get("/rules", response_model=list[RuleVersionView])
async def list_rules(runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Every version the tenant published, with its full parameters; the defaults apply where none matches."""
    async with runtime.sessions() as session:
        return await rules_db.listing(session, tenant)


@router.get("/rules/defaults", response_model=dict[str, Any])
async def rule_defaults() -> Any:
    """The parameters a tenant gets without any version of its own (vee.md §6)."""
    return VeeParameters().model_dump(mode="json")


@router.post("/rules", openapi_extra=CONFIGURATION, status_code=201, response_model=RuleVersionView,
             responses={409: {"description": "The rule id is taken"}, 422: {"description": "Unknown or bad parameter"}})
async def publish_rule(body: RuleVersionBody, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Publish a version: data measured from effective_from on is checked with it (data already validated
    keeps the outcome of the version it was checked with)."""
    unknown = sorted(set(body.parameters) - set(VeeParameters.model_fields))
    if unknown:
        raise HTTPException(422, detail=f"unknown parameters: {', '.join(unknown)}")
    try:
        version = RuleVersion(rule_id=body.rule_id, effective_from=body.effective_from,
                              scope=ObjectGroups(**body.scope.model_dump()),
                              parameters=VeeParameters.model_validate(body.parameters))
    except ValidationError as exc:
        raise HTTPException(422, detail=[{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]) from None
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        try:
            await rules_db.publish(session, tenant, version, body.published_by, now)
        except rules_db.RuleIdTaken as exc:
            raise HTTPException(409, detail=str(exc)) from None
    return {**version.model_dump(mode="json"), "published_by": body.published_by, "published_at": now}
