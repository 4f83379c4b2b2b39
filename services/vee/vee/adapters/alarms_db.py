"""VEE's alarm read model: one row per episode, from raise to clear, with its acknowledgement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from amiflow_runtime.db import ExactDecimal, UtcDateTime
from amiflow_schemas.events.alarms import AlarmAcknowledged, AlarmCleared, AlarmRaised
from sqlalchemy import (
    Column,
    ColumnElement,
    Index,
    Select,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters.db import metadata

alarms = Table(
    "alarms", metadata,
    Column("alarm_id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("alarm_type", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("subject", String(16), nullable=False),
    Column("subject_id", String(128), nullable=False),
    Column("utility", String(16), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("detected_at", UtcDateTime(), nullable=False),
    Column("observed_value", ExactDecimal(), nullable=True),
    Column("threshold_value", ExactDecimal(), nullable=True),
    Column("value_unit", String(16), nullable=True),
    Column("description", Text, nullable=False),
    Column("state", String(16), nullable=False),  # open | cleared
    Column("cleared_at", UtcDateTime(), nullable=True),
    Column("clear_reason", String(32), nullable=True),
    Column("acknowledged_at", UtcDateTime(), nullable=True),
    Column("acknowledged_by", String(128), nullable=True),
    Column("ack_note", Text, nullable=True),
    Index("ix_alarms_tenant_state_time", "tenant_id", "state", "detected_at"),
    Index("ix_alarms_tenant_time", "tenant_id", "detected_at"),
)


async def raised(session: AsyncSession, tenant_id: str, alarm: AlarmRaised) -> None:
    await session.execute(insert(alarms).values(
        alarm_id=str(alarm.alarm_id), tenant_id=tenant_id, alarm_type=alarm.alarm_type.value,
        severity=alarm.severity.value, subject=alarm.subject.value, subject_id=alarm.subject_id,
        utility=alarm.utility.value, rule_id=alarm.rule_id, detected_at=alarm.detected_at,
        observed_value=alarm.observed_value, threshold_value=alarm.threshold_value,
        value_unit=alarm.value_unit.value if alarm.value_unit else None, description=alarm.description,
        state="open",
    ))


async def cleared(session: AsyncSession, tenant_id: str, alarm: AlarmCleared) -> None:
    await session.execute(update(alarms).where(
        alarms.c.tenant_id == tenant_id, alarms.c.alarm_id == str(alarm.alarm_id)).values(
        state="cleared", cleared_at=alarm.cleared_at, clear_reason=alarm.reason.value))


async def acknowledged(session: AsyncSession, tenant_id: str, ack: AlarmAcknowledged) -> None:
    await session.execute(update(alarms).where(
        alarms.c.tenant_id == tenant_id, alarms.c.alarm_id == str(ack.alarm_id)).values(
        acknowledged_at=ack.acknowledged_at, acknowledged_by=ack.acknowledged_by, ack_note=ack.note))


async def apply(session: AsyncSession, tenant_id: str, event: AlarmRaised | AlarmCleared) -> None:
    """Project one raised or cleared alarm."""
    if isinstance(event, AlarmRaised):
        await raised(session, tenant_id, event)
    else:
        await cleared(session, tenant_id, event)


async def alarm(session: AsyncSession, tenant_id: str, alarm_id: UUID) -> dict[str, Any] | None:
    row = (await session.execute(select(alarms).where(
        alarms.c.tenant_id == tenant_id, alarms.c.alarm_id == str(alarm_id)))).first()
    return None if row is None else row._asdict()


@dataclass(frozen=True)
class AlarmFilter:
    """Which alarms a listing shows; None (or empty) leaves that criterion out."""

    state: str | None = None  # open, acknowledged (open and acknowledged), unacknowledged (open, not), cleared
    alarm_types: Sequence[str] = ()
    severities: Sequence[str] = ()
    subject: str | None = None
    subject_id: str | None = None
    meter_id: str | None = None  # a meter's own alarms: subject meter, that subject id
    since: datetime | None = None  # detected at or after
    until: datetime | None = None  # detected before


# An acknowledged alarm stays open until its condition ends: acknowledged and unacknowledged are open ones.
_STATES: dict[str, tuple[ColumnElement[bool], ...]] = {
    "open": (alarms.c.state == "open",),
    "acknowledged": (alarms.c.state == "open", alarms.c.acknowledged_at.is_not(None)),
    "unacknowledged": (alarms.c.state == "open", alarms.c.acknowledged_at.is_(None)),
    "cleared": (alarms.c.state == "cleared",),
}


def _matching(tenant_id: str, where: AlarmFilter) -> Select[Any]:
    query = select(alarms).where(alarms.c.tenant_id == tenant_id)
    if where.state is not None:
        query = query.where(*_STATES[where.state])
    if where.alarm_types:
        query = query.where(alarms.c.alarm_type.in_(sorted(set(where.alarm_types))))
    if where.severities:
        query = query.where(alarms.c.severity.in_(sorted(set(where.severities))))
    if where.meter_id is not None:
        query = query.where(alarms.c.subject == "meter", alarms.c.subject_id == where.meter_id)
    for column, value in ((alarms.c.subject, where.subject), (alarms.c.subject_id, where.subject_id)):
        if value is not None:
            query = query.where(column == value)
    if where.since is not None:
        query = query.where(alarms.c.detected_at >= where.since)
    if where.until is not None:
        query = query.where(alarms.c.detected_at < where.until)
    return query


async def search(session: AsyncSession, tenant_id: str, *, state: str | None, alarm_type: str | None,
                 subject_id: str | None, since: datetime | None, until: datetime | None,
                 limit: int) -> list[dict[str, Any]]:
    """The first page of alarms newest first, by state, one type, subject and detection time."""
    where = AlarmFilter(state=state, alarm_types=[alarm_type] if alarm_type else (), subject_id=subject_id,
                        since=since, until=until)
    return await listing(session, tenant_id, where, after=None, limit=limit)


async def listing(session: AsyncSession, tenant_id: str, where: AlarmFilter, *, after: dict[str, Any] | None,
                  limit: int) -> list[dict[str, Any]]:
    """Newest first (ties by alarm id, descending), from just after the alarm `after` in that order."""
    query = _matching(tenant_id, where)
    if after is not None:
        query = query.where(or_(alarms.c.detected_at < after["detected_at"],
                                and_(alarms.c.detected_at == after["detected_at"],
                                     alarms.c.alarm_id < after["alarm_id"])))
    rows = await session.execute(query.order_by(alarms.c.detected_at.desc(), alarms.c.alarm_id.desc()).limit(limit))
    return [row._asdict() for row in rows]


@dataclass(frozen=True)
class OpenAlarms:
    """The tenant's open alarms counted, now."""

    open: int
    unacknowledged: int
    by_severity: dict[str, int]
    by_kind: dict[str, int]  # alarm types with at least one open alarm


async def open_alarms(session: AsyncSession, tenant_id: str) -> OpenAlarms:
    rows = (await session.execute(
        select(alarms.c.severity, alarms.c.alarm_type, func.count().label("open"),
               func.count(alarms.c.acknowledged_at).label("acknowledged"))
        .where(alarms.c.tenant_id == tenant_id, alarms.c.state == "open")
        .group_by(alarms.c.severity, alarms.c.alarm_type))).all()
    by_severity: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for row in rows:
        by_severity[row.severity] = by_severity.get(row.severity, 0) + row.open
        by_kind[row.alarm_type] = by_kind.get(row.alarm_type, 0) + row.open
    return OpenAlarms(sum(r.open for r in rows), sum(r.open - r.acknowledged for r in rows), by_severity, by_kind)


async def raised_between(session: AsyncSession, tenant_id: str, since: datetime, until: datetime) -> int:
    """How many alarms were detected in [since, until), whatever became of them."""
    return (await session.execute(select(func.count()).select_from(alarms).where(
        alarms.c.tenant_id == tenant_id, alarms.c.detected_at >= since, alarms.c.detected_at < until))).scalar_one()
