"""Which compensating request undoes each console action, decided from the audit record alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from amiflow_runtime.audit_undo import ActionRequest, CannotUndo, Compensation, UndoContext
from commands.adapters.undo import UNDO
from commands.config import CommandsSettings
from commands.main import api

NOW = datetime(2026, 7, 15, 2, tzinfo=UTC)


def context(action: str, *, path: dict[str, str] | None = None, body: Any = None, status: int = 200,
            ids: dict[str, list[str]] | None = None, before: dict[str, Any] | None = None) -> UndoContext:
    method, route = action.split(" ", 1)
    return UndoContext(request=ActionRequest(method, route, path or {}, {}, body), status=status, ids=ids or {},
                       before=before, actor="op-7", reason="wrong meter", now=NOW)


def test_every_declared_action_is_a_route_of_the_api() -> None:
    paths = api(CommandsSettings(database_url="sqlite+aiosqlite:///:memory:")).openapi()["paths"]
    actions = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    assert set(UNDO.undoable) | set(UNDO.final) <= actions


def test_a_new_command_is_cancelled_by_its_undo() -> None:
    undo = UNDO.compensation(context("POST /v1/commands", status=201, ids={"command_id": ["C-1"]}))
    assert undo == Compensation("POST", "/v1/commands/C-1/cancel", {"cancelled_by": "op-7",
                                                                    "reason": "undo: wrong meter"})


def test_a_repeated_request_that_created_nothing_has_nothing_to_cancel() -> None:
    assert isinstance(UNDO.compensation(context("POST /v1/commands", status=200, ids={"command_id": ["C-1"]})),
                      CannotUndo)


def test_an_accepted_proposal_is_undone_by_cancelling_its_command() -> None:
    undo = UNDO.compensation(context("POST /v1/proposals/{proposal_id}/accept", status=201,
                                     ids={"command_id": ["C-2"]}))
    assert isinstance(undo, Compensation) and undo.path == "/v1/commands/C-2/cancel"


@pytest.mark.parametrize(("before", "expected"), [
    ({"status": 404}, Compensation("DELETE", "/v1/exemptions/ACC%201")),
    ({"status": 200, "json": {"until": "2026-09-01", "reason": "medical"}},
     Compensation("PUT", "/v1/exemptions/ACC%201", {"until": "2026-09-01", "reason": "medical",
                                                    "updated_by": "op-7"})),
    ({"status": 200, "json": {"until": "2026-07-01", "reason": "ended"}}, Compensation("DELETE",
                                                                                      "/v1/exemptions/ACC%201")),
])
def test_an_exemption_goes_back_to_what_it_was(before: dict[str, Any], expected: Compensation) -> None:
    assert UNDO.compensation(context("PUT /v1/exemptions/{account_id}", path={"account_id": "ACC 1"},
                                     before=before)) == expected


def test_a_removed_exemption_comes_back_unless_it_has_ended() -> None:
    action = "DELETE /v1/exemptions/{account_id}"
    running = {"status": 200, "json": {"until": "2026-09-01", "reason": "medical"}}
    ended = {"status": 200, "json": {"until": "2026-07-01", "reason": "medical"}}
    assert isinstance(UNDO.compensation(context(action, path={"account_id": "A"}, before=running)), Compensation)
    assert UNDO.compensation(context(action, path={"account_id": "A"}, before=ended)) == CannotUndo(
        "the removed exemption ended on 2026-07-01: there is nothing to put back")


def test_an_automation_rule_goes_back_or_a_new_one_is_disabled() -> None:
    action, path = "PUT /v1/automation-rules/{rule_id}", {"rule_id": "burst"}
    old = {"rule_id": "burst", "action": "valve_close", "enabled": True}
    before = {"status": 200, "json": [{"rule": old, "updated_by": "x"}]}
    assert UNDO.compensation(context(action, path=path, before=before)) == Compensation(
        "PUT", "/v1/automation-rules/burst", {**old, "updated_by": "op-7"})
    new = {"rule_id": "burst", "action": "valve_close", "updated_by": "op-7"}
    disabled = UNDO.compensation(context(action, path=path, before={"status": 200, "json": []}, body=new))
    assert isinstance(disabled, Compensation) and disabled.body["enabled"] is False


def test_what_cannot_be_undone_says_what_to_do_instead() -> None:
    for action in ("POST /v1/commands/{command_id}/cancel", "POST /v1/commands/batch"):
        refusal = UNDO.compensation(context(action))
        assert isinstance(refusal, CannotUndo) and refusal.reason
