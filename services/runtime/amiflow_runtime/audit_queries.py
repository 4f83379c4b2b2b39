"""What auditors ask of a service's audit chain: actions by actor, action, object, outcome and time.

An *entry* is one action as an auditor reads it: its attempt record with its outcome (or "unknown") and
whether it was undone; or a refused or rejected call. Every read is confined to one tenant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from amiflow_runtime.audit import RecordKind
from amiflow_runtime.audit_db import audit_records

REFUSAL_STATUSES = (401, 403)
_ENTRY_KINDS = (RecordKind.ATTEMPT.value, RecordKind.REFUSED.value, RecordKind.REJECTED.value)
_action = audit_records.alias("action")
_outcome = audit_records.alias("outcome")


class OutcomeFilter(StrEnum):
    SUCCEEDED = "succeeded"  # answered below 400
    FAILED = "failed"  # answered 400 or above (but 401/403), or rejected before it ran
    UNKNOWN = "unknown"  # no outcome recorded: the process died mid-action (or it is still running)
    REFUSED = "refused"  # no valid token or permission (401/403, before or by the handler)
    UNDONE = "undone"  # compensated by a later action


@dataclass(frozen=True)
class EntryFilter:
    """What an auditor narrows the trail to; None means any."""

    actor: str | None = None
    action: str | None = None  # "POST /v1/commands", or a route for any method
    object: str | None = None  # an id in the path, the body's *_id fields or the answer
    outcome: OutcomeFilter | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class FoundEntry:
    """An action's record with its outcome record and the undo records about it, parsed."""

    seq: int
    hash: str
    record: dict[str, Any]
    outcome: dict[str, Any] | None
    undo_marks: list[dict[str, Any]]


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _undone() -> Any:
    marks = audit_records.alias("mark")
    return exists(select(marks.c.seq).where(marks.c.refers_to == _action.c.record_id,
                                            marks.c.kind == RecordKind.UNDO.value, marks.c.status < 400))


def _outcome_clause(outcome: OutcomeFilter) -> Any:
    attempt = _action.c.kind == RecordKind.ATTEMPT.value
    refused_inside = _outcome.c.status.in_(REFUSAL_STATUSES)  # the handler's own refusal (an operator's reach)
    return {
        OutcomeFilter.SUCCEEDED: and_(attempt, _outcome.c.status < 400),
        OutcomeFilter.FAILED: or_(and_(attempt, _outcome.c.status >= 400, ~refused_inside),
                                  _action.c.kind == RecordKind.REJECTED.value),
        OutcomeFilter.UNKNOWN: and_(attempt, _outcome.c.seq.is_(None)),
        OutcomeFilter.REFUSED: or_(_action.c.kind == RecordKind.REFUSED.value, and_(attempt, refused_inside)),
        OutcomeFilter.UNDONE: and_(attempt, _undone()),
    }[outcome]


def _entries(tenant: str, where: EntryFilter) -> Select[Any]:
    query = (select(_action.c.seq, _action.c.hash, _action.c.record, _outcome.c.record.label("outcome_record"))
             .select_from(_action.outerjoin(_outcome, and_(_outcome.c.refers_to == _action.c.record_id,
                                                            _outcome.c.kind == RecordKind.OUTCOME.value)))
             .where(_action.c.tenant_id == tenant, _action.c.kind.in_(_ENTRY_KINDS)))
    if where.actor is not None:
        query = query.where(_action.c.actor == where.actor)
    if where.action is not None:
        query = query.where(or_(_action.c.action == where.action,
                                _action.c.action.like("% " + _like(where.action), escape="\\")))
    if where.object is not None:
        pattern = "%|" + _like(where.object) + "|%"
        query = query.where(or_(_action.c.objects.like(pattern, escape="\\"),
                                _outcome.c.objects.like(pattern, escape="\\")))
    if where.outcome is not None:
        query = query.where(_outcome_clause(where.outcome))
    if where.since is not None:
        query = query.where(_action.c.recorded_at >= where.since)
    if where.until is not None:
        query = query.where(_action.c.recorded_at < where.until)
    return query


async def undo_marks(session: AsyncSession, record_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The undo records about each of `record_ids`, oldest first."""
    if not record_ids:
        return {}
    rows = (await session.execute(select(audit_records.c.refers_to, audit_records.c.record)
                                  .where(audit_records.c.kind == RecordKind.UNDO.value,
                                         audit_records.c.refers_to.in_(record_ids))
                                  .order_by(audit_records.c.seq))).all()
    marks: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        marks.setdefault(row.refers_to, []).append(json.loads(row.record))
    return marks


async def find_entries(session: AsyncSession, tenant: str, where: EntryFilter, *, after: int | None,
                       limit: int) -> tuple[list[FoundEntry], int | None]:
    """A page of the tenant's entries in chain order after `after`; and the cursor of the next page."""
    query = _entries(tenant, where)
    if after is not None:
        query = query.where(_action.c.seq > after)
    rows = (await session.execute(query.order_by(_action.c.seq).limit(limit + 1))).all()
    page = rows[:limit]
    parsed = [(row, json.loads(row.record)) for row in page]
    marks = await undo_marks(session, [record["id"] for _, record in parsed])
    entries = [FoundEntry(row.seq, row.hash, record, json.loads(row.outcome_record) if row.outcome_record else None,
                          marks.get(record["id"], [])) for row, record in parsed]
    return entries, (page[-1].seq if len(rows) > limit else None)


async def find_entry(session: AsyncSession, tenant: str, record_id: str) -> FoundEntry | None:
    """The entry a record belongs to (an outcome or undo record leads to its action), in `tenant` only."""
    row = (await session.execute(select(audit_records).where(audit_records.c.record_id == record_id,
                                                             audit_records.c.tenant_id == tenant))).first()
    if row is None:
        return None
    if row.kind in (RecordKind.OUTCOME.value, RecordKind.UNDO.value) and row.refers_to:
        return await find_entry(session, tenant, row.refers_to)
    found = (await session.execute(_entries(tenant, EntryFilter()).where(_action.c.record_id == record_id))).first()
    if found is None:
        return None
    marks = await undo_marks(session, [record_id])
    return FoundEntry(found.seq, found.hash, json.loads(found.record),
                      json.loads(found.outcome_record) if found.outcome_record else None, marks.get(record_id, []))


async def chain_records(session: AsyncSession, record_ids: list[str]) -> list[dict[str, Any]]:
    """The stored records with these ids, each with its place and hashes, in chain order."""
    rows = (await session.execute(select(audit_records).where(audit_records.c.record_id.in_(record_ids))
                                  .order_by(audit_records.c.seq))).all()
    return [{"seq": r.seq, "prev_hash": r.prev_hash, "hash": r.hash, "record": json.loads(r.record)} for r in rows]
