"""The audit trail's API, which the runtime adds to every service: query, read, verify, undo.

    GET  /v1/audit                 the tenant's actions, refused and rejected calls (filters, cursor paging)
    GET  /v1/audit/verify          this service's chain, recomputed
    GET  /v1/audit/{id}            one action with its records, hashes and undo
    POST /v1/audit/{id}/undo       compensate one's own action (see audit_undo.py for who and when)

Reading needs the `audit` permission and shows the caller's tenant only; undoing is an operation and
needs `operate` — the compensating request then needs whatever its own route needs.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from amiflow_runtime.audit import RecordKind, undo_record
from amiflow_runtime.audit_db import AuditTrail, verify_chain
from amiflow_runtime.audit_http import ATTEMPT_KEY, UNDOES_KEY, forwarded, trail_of, undo_registry_of
from amiflow_runtime.audit_queries import (
    REFUSAL_STATUSES,
    EntryFilter,
    FoundEntry,
    OutcomeFilter,
    chain_records,
    find_entries,
    find_entry,
)
from amiflow_runtime.audit_request import who_of
from amiflow_runtime.audit_undo import ActionRequest, CannotUndo, Compensation, UndoContext, undo_refusal
from amiflow_runtime.auth import Permission, Principal, needs
from amiflow_runtime.http import Caller, Tenant
from amiflow_runtime.inprocess import call_app

log = logging.getLogger("amiflow.audit")
AUDIT = needs(Permission.AUDIT)
router = APIRouter(prefix="/v1/audit", tags=["audit"])


class OutcomeView(BaseModel):
    state: str  # succeeded, failed, refused (401/403), unknown (no outcome recorded), rejected
    status: int | None
    ids: dict[str, list[str]]
    at: datetime | None
    error: str | None = None


class UndoState(BaseModel):
    state: str  # started (or outcome unknown), done, failed
    by: str  # the undo request's record id
    compensation: str | None  # the compensating action's record id
    status: int | None
    who: str | None


class EntryView(BaseModel):
    """One action as an auditor reads it."""

    id: str
    seq: int
    kind: str
    at: datetime
    who: dict[str, Any]
    where: dict[str, Any]
    what: dict[str, Any]
    why: str | None
    objects: list[str]
    outcome: OutcomeView
    undoes: str | None  # this action compensates that one
    undo: UndoState | None  # this action's undo, if any
    before: dict[str, Any] | None  # the state kept for its undo
    hash: str


class EntryPage(BaseModel):
    entries: list[EntryView]
    next_after: int | None  # pass as ?after= for the next page; None on the last one


class EntryDetail(EntryView):
    records: list[dict[str, Any]]  # the stored records: seq, prev_hash, hash and the record as hashed


class ChainReport(BaseModel):
    service: str
    intact: bool
    records: int
    chain_id: str | None
    head_seq: int
    head_hash: str
    problems: list[dict[str, Any]]  # {"seq", "what"}, the first 100
    outcome_unknown: list[int]  # the caller's tenant's attempts without outcome (seq)


class UndoOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class UndoView(BaseModel):
    undone: str
    compensation: str | None  # the compensating action's record id
    method: str
    path: str
    status: int
    answer: Any


def _outcome(found: FoundEntry) -> OutcomeView:
    record = found.record
    if record["kind"] != RecordKind.ATTEMPT.value:
        return OutcomeView(state=record["kind"], status=record.get("status"), ids={}, at=record["at"])
    if found.outcome is None:
        return OutcomeView(state="unknown", status=None, ids={}, at=None)
    status = int(found.outcome["status"])
    state = "succeeded" if status < 400 else "refused" if status in REFUSAL_STATUSES else "failed"
    return OutcomeView(state=state, status=status, ids=found.outcome["ids"],
                       at=found.outcome["at"], error=found.outcome.get("error"))


def _undo(marks: list[dict[str, Any]]) -> UndoState | None:
    # The latest attempt to undo wins: a failed one may be followed by another.
    if not marks:
        return None
    last_by = marks[-1]["by"]
    ended = [m for m in marks if m["by"] == last_by and m["state"] != "started"]
    mark = ended[-1] if ended else marks[-1]
    return UndoState(state=mark["state"], by=last_by, compensation=mark.get("compensation"),
                     status=mark.get("status"), who=(mark.get("who") or {}).get("subject"))


def entry_view(found: FoundEntry) -> EntryView:
    record = found.record
    return EntryView(id=record["id"], seq=found.seq, kind=record["kind"], at=record["at"], who=record["who"],
                     where=record["where"], what=record["what"], why=record.get("why"),
                     objects=record.get("objects") or [], outcome=_outcome(found), undoes=record.get("undoes"),
                     undo=_undo(found.undo_marks), before=record.get("before"), hash=found.hash)


def _trail(request: Request) -> AuditTrail:
    trail = trail_of(request.app)
    if trail is None:
        raise HTTPException(503, detail={"problem": "no_audit_trail", "reason": "this process keeps no audit trail"})
    return trail


@router.get("", openapi_extra=AUDIT, response_model=EntryPage)
async def list_entries(request: Request, tenant: Tenant, actor: str | None = None, action: str | None = None,
                       object_id: Annotated[str | None, Query(alias="object")] = None,
                       outcome: OutcomeFilter | None = None,
                       since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
                       until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                       after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None) -> Any:
    """The tenant's actions, refused and rejected calls in chain order: who, when, where, what, why, outcome."""
    where = EntryFilter(actor=actor, action=action, object=object_id, outcome=outcome, since=since, until=until)
    async with _trail(request).sessions() as session:
        found, next_after = await find_entries(session, tenant, where, after=after, limit=limit)
    return EntryPage(entries=[entry_view(f) for f in found], next_after=next_after)


@router.get("/verify", openapi_extra=AUDIT, response_model=ChainReport)
async def verify(request: Request, tenant: Tenant) -> Any:
    """Recompute this service's chain: every hash, every link, no gaps; and the tenant's unknown outcomes."""
    trail = _trail(request)
    checked = await verify_chain(trail.sessions, trail.service)
    return ChainReport(service=trail.service, intact=checked.intact, records=checked.count,
                       chain_id=checked.chain_id, head_seq=checked.head_seq, head_hash=checked.head_hash,
                       problems=[{"seq": p.seq, "what": p.what} for p in checked.problems[:100]],
                       outcome_unknown=checked.outcome_unknown(tenant))


@router.get("/{record_id}", openapi_extra=AUDIT, response_model=EntryDetail,
            responses={404: {"description": "No such record in the caller's tenant"}})
async def read_entry(record_id: str, request: Request, tenant: Tenant) -> Any:
    """One action (an outcome's or undo's id leads to its action) with every record about it, as stored."""
    async with _trail(request).sessions() as session:
        found = await find_entry(session, tenant, record_id)
        if found is None:
            raise HTTPException(404, detail={"problem": "unknown_record", "reason": f"no audit record {record_id}"})
        ids = [found.record["id"], *([found.outcome["id"]] if found.outcome else []),
               *(m["id"] for m in found.undo_marks)]
        records = await chain_records(session, ids)
    return EntryDetail(**entry_view(found).model_dump(), records=records)


def _problem(status: int, problem: str, reason: str) -> HTTPException:
    return HTTPException(status, detail={"problem": problem, "reason": reason})


def _context(found: FoundEntry, caller: Principal, reason: str, now: datetime) -> UndoContext:
    what = found.record["what"]
    request = ActionRequest(what["method"], what["route"], what.get("path_params") or {}, what.get("query") or {},
                            (what.get("body") or {}).get("json"))
    outcome = found.outcome or {}
    return UndoContext(request=request, status=int(outcome.get("status", 0)), ids=outcome.get("ids") or {},
                       before=found.record.get("before"), actor=caller.subject, reason=reason, now=now)


async def _claim(request: Request, trail: AuditTrail, tenant: str, record_id: str, caller: Principal,
                 reason: str, by: str) -> Compensation:
    # Checked and claimed under the chain's lock, so two undo requests cannot both compensate.
    async with trail.locked() as session:
        found = await find_entry(session, tenant, record_id)
        if found is None or found.record["id"] != record_id:
            raise _problem(404, "unknown_action", f"no action {record_id} in this tenant")
        refusal = undo_refusal(found.record, found.outcome, found.undo_marks, caller)
        if refusal is not None:
            raise _problem(refusal.status, refusal.problem, refusal.reason)
        try:
            compensation = undo_registry_of(request.app).compensation(
                _context(found, caller, reason, trail.clock.now()))
        except Exception:  # a compensator that cannot read this record: say so, not 500
            log.exception("the compensator of %s failed on %s", found.record["what"]["route"], record_id)
            compensation = CannotUndo("the service could not work out the compensating action from this record")
        if isinstance(compensation, CannotUndo):
            raise _problem(409, "cannot_undo", compensation.reason)
        await trail.append_in(session, undo_record(tenant=tenant, who=who_of(caller), target=record_id,
                                                   state="started", by=by, reason=reason))
    return compensation


@router.post("/{record_id}/undo", openapi_extra=needs(Permission.OPERATE), response_model=UndoView,
             responses={403: {"description": "Not the caller's action, and the caller is no tenant admin"},
                        404: {"description": "No such action in the caller's tenant"},
                        409: {"description": "Cannot be undone, undone already, or the compensation was refused"}})
async def undo(record_id: str, order: UndoOrder, request: Request, caller: Caller, tenant: Tenant) -> Any:
    """Compensate an action by the opposite one, performed with the caller's token and audited as theirs."""
    trail = _trail(request)
    by = str(getattr(request.state, ATTEMPT_KEY, ""))
    compensation = await _claim(request, trail, tenant, record_id, caller, order.reason, by)
    state: dict[str, Any] = {UNDOES_KEY: record_id}
    extra = {"x-amiflow-reason": quote(order.reason), "content-type": "application/json"}
    body = b"" if compensation.body is None else json.dumps(compensation.body).encode()
    try:
        status, _headers, raw = await call_app(request.app, compensation.method, compensation.path,
                                               forwarded(request.headers, extra), body,
                                               client=request.scope.get("client"), state=state)
    except Exception:  # the compensating call blew up: recorded as failed, so the action can be undone again
        log.exception("the compensation %s %s of %s failed", compensation.method, compensation.path, record_id)
        status, raw = 500, b""
    done = status < 400
    await trail.record(undo_record(tenant=tenant, who=who_of(caller), target=record_id,
                                   state="done" if done else "failed", by=by,
                                   compensation=state.get(ATTEMPT_KEY), status=status, reason=order.reason))
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        answer = None
    if not done:
        raise HTTPException(409, detail={"problem": "compensation_refused",
                                         "reason": f"{compensation.method} {compensation.path} answered {status}",
                                         "answer": answer})
    return UndoView(undone=record_id, compensation=state.get(ATTEMPT_KEY), method=compensation.method,
                    path=compensation.path, status=status, answer=answer)
