"""VEE's per-meter state and the read models derived from it: published points (every version)
and consumption per local hour, day and month."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from amiflow_runtime.db import ExactDecimal, UtcDateTime, one_of
from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text, and_, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters.db import metadata
from vee.core.aggregation import BucketChange
from vee.core.model import MeterSeries
from vee.core.versions import PointPublished

# The whole state of one metering point, written in the transaction that consumed the input.
meter_series = Table(
    "meter_series", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("series_id", String(128), primary_key=True),
    Column("state", Text, nullable=False),
    Column("current_meter_id", String(128), nullable=False),  # the meter now reading into the series
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_meter_series_tenant_meter", "tenant_id", "current_meter_id"),  # consumption totals page by meter
)

series_points = Table(
    "series_points", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("series_id", String(128), primary_key=True),
    Column("measured_at", UtcDateTime(), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("event_id", String(36), nullable=False),
    Column("meter_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("method", String(32), nullable=True),
    Column("consumption", ExactDecimal(), nullable=True),
    Column("unit", String(8), nullable=True),
    Column("previous_at", UtcDateTime(), nullable=True),
    Column("registers", Text, nullable=False),
    Column("checks", Text, nullable=False),
    Column("edit", Text, nullable=True),
    Column("supersedes", String(36), nullable=True),
    Column("reason", String(32), nullable=True),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_series_points_tenant_time", "tenant_id", "measured_at"),  # a local day of every meter (overview)
)

consumption_buckets = Table(
    "consumption_buckets", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("series_id", String(128), primary_key=True),
    Column("granularity", String(8), primary_key=True),
    Column("bucket_start", UtcDateTime(), primary_key=True),
    Column("bucket_end", UtcDateTime(), nullable=False),
    Column("consumption", ExactDecimal(), nullable=False),
    Column("unit", String(8), nullable=False),
    Column("all_actual", Boolean, nullable=False),
    Column("complete", Boolean, nullable=False),  # covered end to end, estimates included
    Column("updated_at", UtcDateTime(), nullable=False),
    # Seconds with billable data, and of those estimated; null on buckets last written before they were kept.
    Column("covered_s", ExactDecimal(), nullable=True),
    Column("estimated_s", ExactDecimal(), nullable=True),
)


async def load(session: AsyncSession, tenant_id: str, series_id: str) -> MeterSeries | None:
    row = (await session.execute(select(meter_series.c.state).where(
        meter_series.c.tenant_id == tenant_id, meter_series.c.series_id == series_id))).first()
    return None if row is None else MeterSeries.model_validate_json(row.state)


async def load_many(session: AsyncSession, tenant_id: str, series_ids: Iterable[str]) -> dict[str, MeterSeries]:
    """The kept states of several series of one tenant, in one query (absent: none kept yet)."""
    wanted = sorted(set(series_ids))
    if not wanted:
        return {}
    rows = await session.execute(select(meter_series.c.series_id, meter_series.c.state).where(
        meter_series.c.tenant_id == tenant_id, one_of(session, meter_series.c.series_id, wanted)))
    return {r.series_id: MeterSeries.model_validate_json(r.state) for r in rows}


async def series_keys(session: AsyncSession) -> list[tuple[str, str]]:
    """(tenant, current meter) of every series VEE keeps: what the estimation timer walks."""
    rows = await session.execute(select(meter_series.c.tenant_id, meter_series.c.current_meter_id))
    return [(r.tenant_id, r.current_meter_id) for r in rows]


async def save(session: AsyncSession, tenant_id: str, state: MeterSeries, existed: bool, now: datetime,
               current_meter_id: str) -> None:
    values = {"state": state.model_dump_json(), "current_meter_id": current_meter_id, "updated_at": now}
    if existed:
        await session.execute(update(meter_series).where(
            meter_series.c.tenant_id == tenant_id, meter_series.c.series_id == state.series_id).values(**values))
    else:
        await session.execute(insert(meter_series).values(tenant_id=tenant_id, series_id=state.series_id, **values))


@dataclass(frozen=True)
class SeriesToSave:
    """One series' state at the end of a batch, and the meter now reading into it."""

    tenant_id: str
    state: MeterSeries
    current_meter_id: str


async def save_many(session: AsyncSession, series: Sequence[SeriesToSave], now: datetime) -> None:
    """Write the states of a batch's series in one statement, whether they existed or not."""
    await _upsert(session, meter_series, [{
        "tenant_id": s.tenant_id, "series_id": s.state.series_id, "state": s.state.model_dump_json(),
        "current_meter_id": s.current_meter_id, "updated_at": now} for s in series])


async def _upsert(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT (primary key) DO UPDATE of many rows in one executemany; both dialects have it."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table)
    key = [c.name for c in table.primary_key.columns]
    statement = statement.on_conflict_do_update(
        index_elements=key, set_={name: statement.excluded[name] for name in rows[0] if name not in key})
    await session.execute(statement, rows)


async def insert_points(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert `point_rows` (of one or of many series) in one statement."""
    if rows:
        await session.execute(insert(series_points), rows)


def point_rows(tenant_id: str, series_id: str, unit: str, published: list[tuple[PointPublished, str]],
               now: datetime) -> list[dict[str, Any]]:
    """The series_points rows of published versions, with the event id each went out as."""
    return [{
        "tenant_id": tenant_id, "series_id": series_id, "measured_at": fact.point.at, "version": fact.version,
        "event_id": event_id, "meter_id": fact.point.meter_id, "status": fact.point.status.value,
        "method": fact.point.method.value if fact.point.method else None, "consumption": fact.point.consumption,
        "unit": unit if fact.point.consumption is not None else None, "previous_at": fact.point.previous_at,
        "registers": json.dumps([r.model_dump(mode="json") for r in fact.point.registers]),
        "checks": json.dumps([c.value for c in fact.point.checks]),
        "edit": fact.point.edit.model_dump_json() if fact.point.edit else None,
        "supersedes": str(fact.supersedes) if fact.supersedes else None,
        "reason": fact.reason.value if fact.reason else None, "recorded_at": now,
    } for fact, event_id in published]


def bucket_rows(tenant_id: str, series_id: str, unit: str, changes: Iterable[BucketChange],
                now: datetime) -> list[dict[str, Any]]:
    """The consumption_buckets rows of changed buckets (a change carries the bucket's whole new total)."""
    return [{"tenant_id": tenant_id, "series_id": series_id, "granularity": change.granularity.value,
             "bucket_start": change.start, "bucket_end": change.end, "consumption": change.total, "unit": unit,
             "all_actual": change.all_actual, "complete": change.complete, "updated_at": now,
             "covered_s": change.covered_s, "estimated_s": change.estimated_s} for change in changes]


async def upsert_buckets(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Set the buckets of `bucket_rows` in one statement; a bucket changed twice keeps the last total."""
    last = {(r["tenant_id"], r["series_id"], r["granularity"], r["bucket_start"]): r for r in rows}
    await _upsert(session, consumption_buckets, list(last.values()))


# Readings of meters VEE does not know yet: answered as failed, and kept to be validated for real as soon
# as the registry event arrives (a meter registered a moment before its first reading is normal).
unplaced_reads = Table(
    "unplaced_reads", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("meter_id", String(128), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("envelope", Text, nullable=False),  # the ReadingReceived event as received
    Column("received_at", UtcDateTime(), nullable=False),
    # The order the broker delivered them in (the meter is locked while one is held), so they are
    # validated in that order: received_at alone can tie within a batch.
    Column("arrival", Integer, nullable=False, server_default="0"),
    # The trace context the reading arrived in, as Kafka headers (JSON [[name, value], …]); null when none
    # was current, or held before it was kept: such a reading is validated in the registry event's trace.
    Column("trace", Text, nullable=True),
)


@dataclass(frozen=True)
class HeldReading:
    """A reading held while its meter was unknown, and the trace it arrived in."""

    envelope: bytes
    trace: list[tuple[str, bytes]]


async def hold_unplaced(session: AsyncSession, tenant_id: str, meter_id: str, event_id: str, raw: bytes,
                        now: datetime, trace: Sequence[tuple[str, bytes]] = ()) -> None:
    key = and_(unplaced_reads.c.tenant_id == tenant_id, unplaced_reads.c.meter_id == meter_id)
    last = (await session.execute(select(func.max(unplaced_reads.c.arrival)).where(key))).scalar()
    await session.execute(insert(unplaced_reads).values(
        tenant_id=tenant_id, meter_id=meter_id, event_id=event_id, envelope=raw.decode(), received_at=now,
        arrival=(last or 0) + 1, trace=json.dumps([[k, v.decode()] for k, v in trace]) if trace else None))


async def take_unplaced(session: AsyncSession, tenant_id: str, meter_id: str) -> list[HeldReading]:
    """The held readings of a meter that has just become known; they are removed as they are taken."""
    key = and_(unplaced_reads.c.tenant_id == tenant_id, unplaced_reads.c.meter_id == meter_id)
    rows = (await session.execute(select(unplaced_reads.c.envelope, unplaced_reads.c.trace).where(key).order_by(
        unplaced_reads.c.arrival, unplaced_reads.c.received_at))).all()
    if rows:
        await session.execute(delete(unplaced_reads).where(key))
    return [HeldReading(r.envelope.encode(), [(k, v.encode()) for k, v in json.loads(r.trace or "[]")])
            for r in rows]


async def record_failure(session: AsyncSession, tenant_id: str, received: Any, event_id: str, check: str,
                         now: datetime) -> None:
    """A reading VEE could not place (unknown meter): a failed point, version 0, until it is placed."""
    await session.execute(insert(series_points).values(
        tenant_id=tenant_id, series_id=received.meter_id, measured_at=received.measured_at, version=0,
        event_id=event_id, meter_id=received.meter_id, status="failed", method=None, consumption=None, unit=None,
        previous_at=None, registers=json.dumps([r.model_dump(mode="json") for r in received.registers]),
        checks=json.dumps([check]), edit=None, supersedes=None, reason=None, recorded_at=now))


async def latest_points(session: AsyncSession, tenant_id: str, series_id: str, since: datetime | None,
                        until: datetime | None, limit: int) -> list[dict[str, Any]]:
    """The newest version of each slot in [since, until), newest slot first."""
    sp = series_points
    newest = select(sp.c.measured_at, func.max(sp.c.version).label("version")).where(
        sp.c.tenant_id == tenant_id, sp.c.series_id == series_id).group_by(sp.c.measured_at).subquery()
    query = select(sp).join(newest, and_(sp.c.measured_at == newest.c.measured_at,
                                         sp.c.version == newest.c.version)).where(
        sp.c.tenant_id == tenant_id, sp.c.series_id == series_id)
    if since is not None:
        query = query.where(sp.c.measured_at >= since)
    if until is not None:
        query = query.where(sp.c.measured_at < until)
    rows = await session.execute(query.order_by(sp.c.measured_at.desc()).limit(limit))
    return [{**r._asdict(), "registers": json.loads(r.registers), "checks": json.loads(r.checks),
             "edit": json.loads(r.edit) if r.edit else None} for r in rows]


async def buckets(session: AsyncSession, tenant_id: str, series_id: str, granularity: str,
                  since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    cb = consumption_buckets
    query = select(cb).where(cb.c.tenant_id == tenant_id, cb.c.series_id == series_id,
                             cb.c.granularity == granularity)
    if since is not None:
        query = query.where(cb.c.bucket_start >= since)
    if until is not None:
        query = query.where(cb.c.bucket_start < until)
    return [r._asdict() for r in await session.execute(query.order_by(cb.c.bucket_start))]


async def group_buckets(session: AsyncSession, tenant_id: str, series_ids: list[str], granularity: str,
                        since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    """Member meters' buckets summed per local period, exactly (Decimal in Python, not SQL SUM on text);
    covered_s and estimated_s are None when a member's bucket does not know them."""
    cb = consumption_buckets
    totals: dict[datetime, dict[str, Any]] = {}
    for start in range(0, len(series_ids), 500):
        query = select(cb).where(cb.c.tenant_id == tenant_id, cb.c.granularity == granularity,
                                 cb.c.series_id.in_(series_ids[start:start + 500]))
        if since is not None:
            query = query.where(cb.c.bucket_start >= since)
        if until is not None:
            query = query.where(cb.c.bucket_start < until)
        for row in await session.execute(query):
            tally = totals.setdefault(row.bucket_start, {"start": row.bucket_start, "end": row.bucket_end,
                                                         "consumption": Decimal(0), "unit": row.unit,
                                                         "meters": 0, "actual_meters": 0,
                                                         "complete_meters": 0, "covered_s": Decimal(0),
                                                         "estimated_s": Decimal(0)})
            tally["consumption"] += row.consumption
            tally["meters"] += 1
            tally["actual_meters"] += 1 if row.all_actual else 0
            tally["complete_meters"] += 1 if row.complete else 0
            for kept in ("covered_s", "estimated_s"):
                value = getattr(row, kept)
                tally[kept] = None if value is None or tally[kept] is None else tally[kept] + value
    return [totals[k] for k in sorted(totals)]
