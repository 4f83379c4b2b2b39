"""A tenant's configuration as data: its cut-off policy, exemptions per account, and automation rules.

Each is replaced as a whole and records who changed it. A change applies to decisions made from then on:
a cut-off already scheduled keeps its send time (cancel it at POST /v1/commands/{id}/cancel).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from amiflow_runtime.auth import CONFIGURATION
from amiflow_runtime.db import lock_for_transaction
from amiflow_runtime.http import RuntimeDep, Tenant, validated
from amiflow_schemas.events.commands import CommandKind
from amiflow_schemas.primitives import Identifier, Text
from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict

from commands.adapters import queries, store
from commands.adapters.web import commands_settings, problem, refusal_docs
from commands.core.automation import AutomationRule
from commands.core.policy import AccountExemption, CutOffPolicy, next_allowed_instant

router = APIRouter(tags=["configuration"])
AccountId = Annotated[str, Path(max_length=64)]


class PolicyChange(CutOffPolicy):
    """The tenant's cut-off policy as a whole (checked by the policy model itself), and who sets it."""

    updated_by: Identifier


class PolicyView(BaseModel):
    policy: CutOffPolicy
    default: bool  # True: the tenant has set none, the service's default applies
    updated_by: str | None
    updated_at: datetime | None


class ExemptionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: date  # the last local day without cut-offs
    reason: Text
    updated_by: Identifier


class ExemptionView(BaseModel):
    account_id: str
    until: date
    reason: str
    updated_by: str
    updated_at: datetime


class RuleChange(AutomationRule):
    """An automation rule as a whole (its rule_id the path's), and who sets it."""

    updated_by: Identifier


class RuleView(BaseModel):
    rule: AutomationRule
    updated_by: str
    updated_at: datetime


@router.put("/cut-off-policy", openapi_extra=CONFIGURATION, response_model=PolicyView, responses=refusal_docs(422))
async def set_cut_off_policy(body: PolicyChange, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Replace the tenant's cut-off policy: what to cut, quiet windows and days, holidays, intervals, restore."""
    zone, now = ZoneInfo(commands_settings(runtime.settings).zone_of(tenant)), runtime.clock.now()
    policy = validated(lambda: CutOffPolicy.model_validate(body.model_dump(exclude={"updated_by"})), "body")
    if policy.cut_utilities:
        try:  # quiet at every hour would fail every depletion later, in the worker: refuse it now
            next_allowed_instant(policy, now, zone)
        except ValueError as exc:
            raise problem(422, "no_cut_off_allowed", str(exc)) from None
    async with runtime.sessions() as session, session.begin():
        await lock_for_transaction(session, tenant, "cut-off-policy")
        await store.save_policy(session, tenant, policy, body.updated_by, now)
    return PolicyView(policy=policy, default=False, updated_by=body.updated_by, updated_at=now)


@router.get("/cut-off-policy", response_model=PolicyView)
async def read_cut_off_policy(runtime: RuntimeDep, tenant: Tenant) -> Any:
    """The tenant's cut-off policy, or the service's default (marked so) until it sets one."""
    async with runtime.sessions() as session:
        found = await store.policy(session, tenant)
    if found is None:
        default = commands_settings(runtime.settings).default_policy
        return PolicyView(policy=default, default=True, updated_by=None, updated_at=None)
    policy, by, at = found
    return PolicyView(policy=policy, default=False, updated_by=by, updated_at=at)


@router.put("/exemptions/{account_id}", openapi_extra=CONFIGURATION, response_model=ExemptionView,
            responses=refusal_docs(422))
async def set_exemption(account_id: AccountId, body: ExemptionChange, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Do not cut the account off through a local date (inclusive), e.g. for a medical need; replaces any before."""
    zone, now = ZoneInfo(commands_settings(runtime.settings).zone_of(tenant)), runtime.clock.now()
    if body.until < now.astimezone(zone).date():
        raise problem(422, "until_passed", f"until {body.until} is before today, {now.astimezone(zone).date()}")
    exemption = validated(lambda: AccountExemption(account_id=account_id, until=body.until, reason=body.reason),
                          "path")
    async with runtime.sessions() as session, session.begin():
        await lock_for_transaction(session, tenant, "exemption", account_id)
        await store.save_exemption(session, tenant, exemption, body.updated_by, now)
    return ExemptionView(account_id=account_id, until=body.until, reason=body.reason, updated_by=body.updated_by,
                         updated_at=now)


@router.get("/exemptions/{account_id}", response_model=ExemptionView, responses=refusal_docs(404))
async def read_exemption(account_id: AccountId, runtime: RuntimeDep, tenant: Tenant) -> Any:
    async with runtime.sessions() as session:
        found = await queries.exemption(session, tenant, account_id)
    if found is None:
        raise problem(404, "no_exemption", f"account {account_id} has no exemption")
    return ExemptionView(account_id=account_id, until=found.document.until, reason=found.document.reason,
                         updated_by=found.updated_by, updated_at=found.updated_at)


@router.delete("/exemptions/{account_id}", openapi_extra=CONFIGURATION, status_code=204, responses=refusal_docs(404))
async def remove_exemption(account_id: AccountId, runtime: RuntimeDep, tenant: Tenant) -> Response:
    """End the exemption now: the account's next depletion is cut off under the policy."""
    async with runtime.sessions() as session, session.begin():
        await lock_for_transaction(session, tenant, "exemption", account_id)
        removed = await store.remove_exemption(session, tenant, account_id)
    if not removed:
        raise problem(404, "no_exemption", f"account {account_id} has no exemption")
    return Response(status_code=204)


@router.put("/automation-rules/{rule_id}", openapi_extra=CONFIGURATION, response_model=RuleView,
            responses=refusal_docs(422))
async def set_automation_rule(rule_id: str, body: RuleChange, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Replace a rule: on an alarm or a threshold, request (execute) or propose one command on the device."""
    if body.rule_id != rule_id:
        raise problem(422, "rule_id_mismatch", f"the body names rule {body.rule_id}, the path {rule_id}")
    if body.action is CommandKind.SET_PARAMETER:  # a rule names no parameter value to write
        raise problem(422, "kind_not_supported", "an automation rule cannot write parameters")
    rule = validated(lambda: AutomationRule.model_validate(body.model_dump(exclude={"updated_by"})), "body")
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        await lock_for_transaction(session, tenant, "automation-rule", rule_id)
        await store.save_rule(session, tenant, rule, body.updated_by, now)
    return RuleView(rule=rule, updated_by=body.updated_by, updated_at=now)


@router.get("/automation-rules", response_model=list[RuleView])
async def list_automation_rules(runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Every rule of the tenant, enabled or not, by id."""
    async with runtime.sessions() as session:
        found = await queries.rules(session, tenant)
    return [RuleView(rule=r.document, updated_by=r.updated_by, updated_at=r.updated_at) for r in found]
