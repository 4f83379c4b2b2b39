"""The whole fleet at once, for the operator console: a local day's readings of every meter by status, the
meters that reported, and each meter's consumption over a period — each one set-based query."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, distinct, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters.registry_db import meter_registry
from vee.adapters.series_db import consumption_buckets, meter_series, series_points
from vee.core.grid import BucketCover


async def readings_by_status(session: AsyncSession, tenant_id: str, since: datetime,
                             until: datetime) -> dict[str, int]:
    """How many slots in [since, until) of all the tenant's series show each status (their newest version)."""
    sp = series_points
    in_period = and_(sp.c.tenant_id == tenant_id, sp.c.measured_at >= since, sp.c.measured_at < until)
    newest = (select(sp.c.series_id, sp.c.measured_at, func.max(sp.c.version).label("version"))
              .where(in_period).group_by(sp.c.series_id, sp.c.measured_at).subquery())
    rows = await session.execute(
        select(sp.c.status, func.count().label("slots"))
        .join(newest, and_(sp.c.series_id == newest.c.series_id, sp.c.measured_at == newest.c.measured_at,
                           sp.c.version == newest.c.version))
        .where(in_period).group_by(sp.c.status))
    return {row.status: row.slots for row in rows}


async def meters_reporting(session: AsyncSession, tenant_id: str, since: datetime, until: datetime) -> int:
    """How many meters gave an actual reading measured in [since, until).

    Any version counts: a meter whose reading was later edited (or found implausible) still reported.
    """
    sp = series_points
    return (await session.execute(select(func.count(distinct(sp.c.meter_id))).where(
        sp.c.tenant_id == tenant_id, sp.c.measured_at >= since, sp.c.measured_at < until,
        sp.c.status == "actual"))).scalar_one()


@dataclass(frozen=True)
class MeterTotal:
    """One meter's consumption over a period; None when no bucket of the period has data."""

    meter_id: str
    utility: str
    unit: str
    consumption: Decimal | None


def _in_cover(cover: BucketCover) -> ColumnElement[bool]:
    cb = consumption_buckets
    pieces = [and_(cb.c.granularity == g.value, cb.c.bucket_start >= lo, cb.c.bucket_start < hi)
              for g, lo, hi in cover.ranges]
    return or_(*pieces) if pieces else false()


def _exact_sum(dialect: str) -> tuple[ColumnElement[Any], Callable[[Any], Decimal | None]]:
    """The SQL aggregate of a meter's bucket totals and how to read it back as an exact Decimal.

    PostgreSQL sums NUMERIC exactly; SQLite keeps decimals as text and would sum them as floats, so
    there the values are concatenated by the GROUP BY and summed in Python.
    """
    cb = consumption_buckets
    if dialect == "postgresql":
        return func.sum(cb.c.consumption), lambda total: total
    return func.group_concat(cb.c.consumption, " "), _sum_of_joined


def _sum_of_joined(joined: str | None) -> Decimal | None:
    return None if joined is None else sum((Decimal(v) for v in joined.split(" ")), Decimal(0))


async def consumption_totals(session: AsyncSession, tenant_id: str, cover: BucketCover, *, utility: str | None,
                             after: str | None, limit: int) -> tuple[list[MeterTotal], str | None]:
    """A page of the meters now in place at each metering point (by meter id, after `after`) with their
    consumption over `cover`; and the meter id to page on from, when there are more."""
    ms, mr, cb = meter_series, meter_registry, consumption_buckets
    page = (select(ms.c.series_id, ms.c.current_meter_id.label("meter_id"), mr.c.utility, mr.c.unit)
            .join(mr, and_(mr.c.tenant_id == ms.c.tenant_id, mr.c.meter_id == ms.c.current_meter_id))
            .where(ms.c.tenant_id == tenant_id))
    if utility is not None:
        page = page.where(mr.c.utility == utility)
    if after is not None:
        page = page.where(ms.c.current_meter_id > after)
    meters = page.order_by(ms.c.current_meter_id).limit(limit + 1).subquery()
    total, exact = _exact_sum(session.get_bind().dialect.name)
    rows = (await session.execute(
        select(meters.c.meter_id, meters.c.utility, meters.c.unit, total)
        .select_from(meters.outerjoin(cb, and_(cb.c.tenant_id == tenant_id, cb.c.series_id == meters.c.series_id,
                                               _in_cover(cover))))
        .group_by(meters.c.meter_id, meters.c.utility, meters.c.unit)
        .order_by(meters.c.meter_id))).all()
    found = [MeterTotal(r.meter_id, r.utility, r.unit, exact(r[3])) for r in rows[:limit]]
    return found, (found[-1].meter_id if len(rows) > limit else None)

