"""Who may undo which action, and how a service's registry chooses the compensating request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from amiflow_runtime.audit_undo import (
    ActionRequest,
    CannotUndo,
    Compensation,
    Undoable,
    UndoContext,
    UndoRegistry,
    segment,
    undo_refusal,
)
from amiflow_runtime.auth import Principal, principal_of

NOW = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)


def caller(subject: str = "op-7", roles: tuple[str, ...] = ("operator",), tenant: str = "riverside") -> Principal:
    return principal_of({"sub": subject, "tenant": tenant, "roles": list(roles)})


def action(subject: str = "op-7", **extra: Any) -> dict[str, Any]:
    return {"kind": "attempt", "id": "A-1", "who": {"subject": subject, "home_tenant": "riverside"}, **extra}


OK = {"kind": "outcome", "status": 201}


def refusal(target: dict[str, Any], outcome: dict[str, Any] | None, marks: list[dict[str, Any]],
            who: Principal) -> str | None:
    found = undo_refusal(target, outcome, marks, who)
    return None if found is None else found.problem


def test_the_actor_may_undo_their_own_action() -> None:
    assert refusal(action(), OK, [], caller()) is None


def test_another_operator_may_not_and_a_tenant_admin_may() -> None:
    assert refusal(action("op-8"), OK, [], caller()) == "not_your_action"
    assert undo_refusal(action("op-8"), OK, [], caller()).status == 403  # type: ignore[union-attr]
    assert refusal(action("op-8"), OK, [], caller("boss", ("tenant_admin",))) is None


def test_the_same_subject_of_another_tenant_is_someone_else() -> None:
    assert refusal(action(), OK, [], caller(tenant="elsewhere")) == "not_your_action"


@pytest.mark.parametrize(("target", "outcome", "problem"), [
    ({"kind": "outcome"}, OK, "not_an_action"),
    (action(undoes="A-0"), OK, "is_a_compensation"),
    (action(), None, "outcome_unknown"),
    (action(), {"status": 409}, "action_failed"),
])
def test_what_is_not_an_undoable_action(target: dict[str, Any], outcome: dict[str, Any] | None, problem: str) -> None:
    assert refusal(target, outcome, [], caller()) == problem


def test_an_action_is_undone_once() -> None:
    done = [{"state": "started", "by": "U-1"}, {"state": "done", "by": "U-1"}]
    assert refusal(action(), OK, done, caller()) == "already_undone"


def test_an_undo_under_way_or_lost_mid_way_blocks_another() -> None:
    assert refusal(action(), OK, [{"state": "started", "by": "U-1"}], caller()) == "undo_in_progress"


def test_a_failed_undo_may_be_tried_again() -> None:
    failed = [{"state": "started", "by": "U-1"}, {"state": "failed", "by": "U-1"}]
    assert refusal(action(), OK, failed, caller()) is None


def context(method: str, route: str, **kw: Any) -> UndoContext:
    fields: dict[str, Any] = {"status": 201, "ids": {"thing_id": ["T 1"]}, "before": None, "actor": "op-7",
                              "reason": "typo", "now": NOW, **kw}
    return UndoContext(request=ActionRequest(method, route, {}, {}, None), **fields)


def delete_thing(ctx: UndoContext) -> Compensation | CannotUndo:
    return Compensation("DELETE", f"/v1/things/{segment(ctx.answer_id('thing_id'))}")


REGISTRY = UndoRegistry(undoable={"POST /v1/things": Undoable(delete_thing, lambda r: "/v1/things")},
                        final={"POST /v1/things/{id}/burn": "burnt things stay burnt"})


def test_the_registry_asks_the_routes_compensator() -> None:
    assert REGISTRY.compensation(context("POST", "/v1/things")) == Compensation("DELETE", "/v1/things/T%201")


def test_a_final_route_says_why_and_an_unknown_one_says_there_is_no_compensation() -> None:
    assert REGISTRY.compensation(context("POST", "/v1/things/{id}/burn")) == CannotUndo("burnt things stay burnt")
    assert REGISTRY.compensation(context("PUT", "/v1/things")) == CannotUndo(
        "PUT /v1/things has no compensating action")


def test_the_state_before_is_asked_for_only_where_an_undo_needs_it() -> None:
    assert REGISTRY.before_query(ActionRequest("POST", "/v1/things", {}, {}, None)) == "/v1/things"
    assert REGISTRY.before_query(ActionRequest("PUT", "/v1/things", {}, {}, None)) is None


def test_the_state_before_reads_as_missing_or_as_its_answer() -> None:
    assert context("PUT", "/", before={"status": 404}).before_missing
    assert context("PUT", "/", before={"status": 200, "json": {"a": 1}}).before_json == {"a": 1}
    assert context("PUT", "/", before={"status": 403}).before_json is None
