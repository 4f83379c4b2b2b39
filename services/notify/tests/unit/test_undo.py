"""Which compensating request undoes each notify action, decided from the audit record alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from amiflow_runtime.audit_undo import ActionRequest, CannotUndo, Compensation, UndoContext
from notify.adapters.undo import UNDO
from notify.config import NotifySettings
from notify.main import api

NOW = datetime(2026, 7, 15, 2, tzinfo=UTC)
CONTACT = {"contact_id": "C-1", "audience": "customer", "account_id": "ACC-1", "role": None, "site": None,
           "contact": {"name": "Li Wei", "email": "li.wei@example.cn", "phone": None, "wechat_openid": None,
                       "channels": ["email"], "language": "zh-CN", "quiet_start": None, "quiet_end": None,
                       "time_zone": None, "opted_out": []},
           "updated_by": "op-1", "updated_at": "2026-07-01T00:00:00Z"}


def context(action: str, *, before: dict[str, Any] | None = None,
            ids: dict[str, list[str]] | None = None) -> UndoContext:
    method, route = action.split(" ", 1)
    return UndoContext(request=ActionRequest(method, route, {"contact_id": "C-1"}, {}, None), status=200,
                       ids=ids or {}, before=before, actor="op-7", reason="wrong customer", now=NOW)


def test_every_declared_action_is_a_route_of_the_api() -> None:
    paths = api(NotifySettings(database_url="sqlite+aiosqlite:///:memory:")).openapi()["paths"]
    actions = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    assert set(UNDO.undoable) | set(UNDO.final) <= actions


def test_a_new_contact_is_deleted_and_a_changed_one_put_back() -> None:
    assert UNDO.compensation(context("PUT /v1/contacts/{contact_id}", before={"status": 404})) == Compensation(
        "DELETE", "/v1/contacts/C-1")
    undo = UNDO.compensation(context("PUT /v1/contacts/{contact_id}", before={"status": 200, "json": CONTACT}))
    assert isinstance(undo, Compensation) and undo.method == "PUT"
    assert undo.body == {"audience": "customer", "account_id": "ACC-1", "role": None, "site": None,
                         **CONTACT["contact"], "updated_by": "op-7"}


def test_a_deleted_contact_is_saved_again() -> None:
    undo = UNDO.compensation(context("DELETE /v1/contacts/{contact_id}", before={"status": 200, "json": CONTACT}))
    assert isinstance(undo, Compensation) and (undo.method, undo.path) == ("PUT", "/v1/contacts/C-1")


def test_a_webhook_subscription_is_deleted_but_a_deleted_one_stays_deleted() -> None:
    assert UNDO.compensation(context("POST /v1/webhook-subscriptions", ids={"subscription_id": ["erp"]})) == (
        Compensation("DELETE", "/v1/webhook-subscriptions/erp"))
    refusal = UNDO.compensation(context("DELETE /v1/webhook-subscriptions/{subscription_id}"))
    assert isinstance(refusal, CannotUndo) and "secret" in refusal.reason
