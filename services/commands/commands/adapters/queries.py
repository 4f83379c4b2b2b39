"""Read queries of the console over the configuration tables: the documents with who changed them and when
(store.py returns the documents alone, which is what the handlers need)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commands.adapters.store import automation_rules, exemptions
from commands.core.automation import AutomationRule
from commands.core.policy import AccountExemption

D = TypeVar("D", bound=BaseModel)


@dataclass(frozen=True)
class Changed(Generic[D]):
    """A configuration document, and the last change to it."""

    document: D
    updated_by: str
    updated_at: datetime


async def exemption(session: AsyncSession, tenant_id: str, account_id: str) -> Changed[AccountExemption] | None:
    row = (await session.execute(select(exemptions).where(
        exemptions.c.tenant_id == tenant_id, exemptions.c.account_id == account_id))).first()
    if row is None:
        return None
    return Changed(AccountExemption.model_validate_json(row.document), row.updated_by, row.updated_at)


async def rules(session: AsyncSession, tenant_id: str) -> list[Changed[AutomationRule]]:
    """The tenant's automation rules by id, enabled or not."""
    rows = await session.execute(select(automation_rules).where(
        automation_rules.c.tenant_id == tenant_id).order_by(automation_rules.c.rule_id))
    return [Changed(AutomationRule.model_validate_json(r.document), r.updated_by, r.updated_at) for r in rows]
