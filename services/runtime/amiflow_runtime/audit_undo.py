"""Undoing an operator's action by a compensating action: the registry services declare, and the rules.

History is never rewritten: an action is undone by another action — the opposite operation the service's
API already offers (cancel a command not yet sent, delete what a PUT created, put back what a PUT
replaced) — performed through the API itself with the undoer's own token, so it passes the same
authorisation and is audited like any action, linked both ways (`undoes` on the compensating action, an
`undo` record naming it for the original).

A service declares, per route, an `Undoable`: the compensator — a pure function of what the record says
(the request, the answer's ids and, where declared, the state before) that returns the compensating
request or the reason the action cannot be undone — and optionally `before`, the GET whose answer the
compensator needs, which the runtime performs with the caller's token just before the action runs and
keeps in the attempt record (a PUT that replaces something must remember what it replaced).

Who may undo: the original actor (same subject of the same home tenant), or a tenant admin (or platform
admin) of the action's tenant — an administrator cleans up after a colleague who has left; an operator
cannot undo another operator's action. Only once: an action undone, or whose undo is under way, is not
undone again. A compensating action is not itself undone (repeat the original action instead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from amiflow_runtime.audit import RecordKind, action_of
from amiflow_runtime.auth import Principal, Role


@dataclass(frozen=True)
class ActionRequest:
    """What an audited request asked: method, route template, path parameters, query and JSON body."""

    method: str
    route: str
    path_params: Mapping[str, str]
    query: Mapping[str, Any]
    body: Any  # the JSON body as recorded (secrets redacted), None when there was none or it was not kept

    @property
    def action(self) -> str:
        return action_of(self.method, self.route)


@dataclass(frozen=True)
class UndoContext:
    """What a compensator decides from: the original request and answer, the state before, who undoes and when."""

    request: ActionRequest
    status: int  # the original answer's status
    ids: Mapping[str, list[str]]  # the ids the original answer named
    before: Mapping[str, Any] | None  # {"status": ..., "json": ...} of the declared GET, if one was made
    actor: str  # the subject undoing
    reason: str
    now: datetime

    def answer_id(self, name: str) -> str | None:
        """The first id called `name` in the original answer."""
        values = self.ids.get(name) or []
        return values[0] if values else None

    @property
    def before_json(self) -> Any:
        """The declared GET's answer before the action, when it answered 200."""
        if self.before is None or self.before.get("status") != 200:
            return None
        return self.before.get("json")

    @property
    def before_missing(self) -> bool:
        """True when the declared GET answered 404: the thing did not exist before the action."""
        return self.before is not None and self.before.get("status") == 404


@dataclass(frozen=True)
class Compensation:
    """The request that undoes an action, made through the API with the undoer's token."""

    method: str
    path: str
    body: Any = None


@dataclass(frozen=True)
class CannotUndo:
    """Why an action cannot be undone."""

    reason: str


Compensator = Callable[[UndoContext], Compensation | CannotUndo]
BeforeQuery = Callable[[ActionRequest], str | None]  # the GET path (with query) to keep, or None


@dataclass(frozen=True)
class Undoable:
    """How one route's actions are undone."""

    compensate: Compensator
    before: BeforeQuery | None = None


@dataclass(frozen=True)
class UndoRegistry:
    """A service's undoable routes by action ("POST /v1/commands"), and the routes it declares final."""

    undoable: Mapping[str, Undoable] = field(default_factory=dict)
    final: Mapping[str, str] = field(default_factory=dict)  # action -> why it cannot be undone

    def compensation(self, context: UndoContext) -> Compensation | CannotUndo:
        """The compensating request for an action, or why there is none."""
        action = context.request.action
        if action in self.final:
            return CannotUndo(self.final[action])
        undoable = self.undoable.get(action)
        if undoable is None:
            return CannotUndo(f"{action} has no compensating action")
        return undoable.compensate(context)

    def before_query(self, request: ActionRequest) -> str | None:
        """The GET to keep before this request runs, if its undo needs one."""
        undoable = self.undoable.get(request.action)
        return undoable.before(request) if undoable is not None and undoable.before is not None else None


NO_UNDO = UndoRegistry()


def segment(value: object) -> str:
    """A value as one URL path segment."""
    return quote(str(value), safe="")


@dataclass(frozen=True)
class UndoRefusal:
    """Why an undo is refused, as an HTTP answer."""

    status: int
    problem: str
    reason: str


def undo_refusal(target: Mapping[str, Any], outcome: Mapping[str, Any] | None,
                 marks: Iterable[Mapping[str, Any]], caller: Principal) -> UndoRefusal | None:
    """Whether `caller` may undo the action `target` now, given its outcome and the undo records about it."""
    if target.get("kind") != RecordKind.ATTEMPT.value:
        return UndoRefusal(409, "not_an_action", "only an action (an attempt record) can be undone")
    who = target.get("who") or {}
    own = who.get("subject") == caller.subject and who.get("home_tenant") == caller.home_tenant
    if not own and not caller.roles & {Role.TENANT_ADMIN, Role.PLATFORM_ADMIN}:
        return UndoRefusal(403, "not_your_action", "only the operator who acted, or a tenant admin, may undo it")
    if target.get("undoes"):
        return UndoRefusal(409, "is_a_compensation", "a compensating action is not undone; repeat the original "
                                                     "action instead")
    if outcome is None:
        return UndoRefusal(409, "outcome_unknown", "the action's outcome was never recorded; check its effect "
                                                   "before compensating by hand")
    if int(outcome.get("status", 500)) >= 400:
        return UndoRefusal(409, "action_failed", f"the action failed ({outcome.get('status')}): nothing to undo")
    started = {m.get("by") for m in marks if m.get("state") == "started"}
    ended = {m.get("by"): m.get("state") for m in marks if m.get("state") in ("done", "failed")}
    if "done" in ended.values():
        return UndoRefusal(409, "already_undone", "the action was undone already")
    if started - set(ended):
        return UndoRefusal(409, "undo_in_progress", "an undo of this action is under way or its outcome is unknown")
    return None
