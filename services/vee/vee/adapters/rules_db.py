"""The tenants' VEE rule versions: append-only rows, one per (tenant, rule id), read as a RuleSet."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from amiflow_runtime.db import UtcDateTime, one_of
from sqlalchemy import Column, String, Table, Text, and_, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters.db import metadata
from vee.core.rules import RuleSet, RuleVersion

rule_versions = Table(
    "rule_versions", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("rule_id", String(128), primary_key=True),
    Column("effective_from", UtcDateTime(), nullable=False),
    Column("version", Text, nullable=False),  # RuleVersion as JSON: scope and parameters
    Column("published_by", String(128), nullable=False),
    Column("published_at", UtcDateTime(), nullable=False),
)


class RuleIdTaken(ValueError):
    """A rule id names one version forever: AlarmRaised.rule_id and audits point at it."""


async def rule_set(session: AsyncSession, tenant_id: str) -> RuleSet:
    """The tenant's rule versions (the spec's defaults apply where none matches)."""
    return (await rule_sets(session, [tenant_id]))[tenant_id]


async def rule_sets(session: AsyncSession, tenant_ids: Iterable[str]) -> dict[str, RuleSet]:
    """`rule_set` of several tenants in one query (a batch of readings)."""
    wanted = sorted(set(tenant_ids))
    versions: dict[str, list[RuleVersion]] = {tenant_id: [] for tenant_id in wanted}
    if wanted:
        rows = await session.execute(
            select(rule_versions.c.tenant_id, rule_versions.c.version).where(
                one_of(session, rule_versions.c.tenant_id, wanted))
            .order_by(rule_versions.c.effective_from, rule_versions.c.rule_id))
        for r in rows:
            versions[r.tenant_id].append(RuleVersion.model_validate_json(r.version))
    return {tenant_id: RuleSet(tenant_id=tenant_id, versions=tuple(found)) for tenant_id, found in versions.items()}


async def publish(session: AsyncSession, tenant_id: str, version: RuleVersion, published_by: str,
                  now: datetime) -> None:
    """Add a version; versions are never changed in place, a correction is a new version."""
    key = and_(rule_versions.c.tenant_id == tenant_id, rule_versions.c.rule_id == version.rule_id)
    if (await session.execute(select(rule_versions.c.rule_id).where(key))).first() is not None:
        raise RuleIdTaken(f"rule id {version.rule_id} is already published")
    await session.execute(insert(rule_versions).values(
        tenant_id=tenant_id, rule_id=version.rule_id, effective_from=version.effective_from,
        version=version.model_dump_json(), published_by=published_by, published_at=now))


async def listing(session: AsyncSession, tenant_id: str) -> list[dict[str, object]]:
    """Every published version with who published it and when, oldest effective first."""
    rows = await session.execute(select(rule_versions).where(rule_versions.c.tenant_id == tenant_id)
                                 .order_by(rule_versions.c.effective_from, rule_versions.c.rule_id))
    return [{**RuleVersion.model_validate_json(r.version).model_dump(mode="json"),
             "published_by": r.published_by, "published_at": r.published_at} for r in rows]
