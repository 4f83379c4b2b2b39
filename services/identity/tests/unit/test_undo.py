"""Which compensating request undoes each identity action, decided from the audit record alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from amiflow_runtime.audit_undo import ActionRequest, CannotUndo, Compensation, UndoContext
from identity.adapters.undo import UNDO
from identity.config import IdentitySettings
from identity.main import api
from pydantic import SecretStr

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def context(action: str, *, path: dict[str, str] | None = None, body: Any = None, status: int = 200,
            ids: dict[str, list[str]] | None = None, before: dict[str, Any] | None = None) -> UndoContext:
    method, route = action.split(" ", 1)
    return UndoContext(request=ActionRequest(method, route, path or {}, {}, body), status=status, ids=ids or {},
                       before=before, actor="boss", reason="wrong user", now=NOW)


def test_every_declared_action_is_a_route_of_the_api(tmp_path: Any) -> None:
    settings = IdentitySettings(database_url="sqlite+aiosqlite:///:memory:", data_dir=tmp_path,
                                key_encryption_key=SecretStr("k" * 43 + "="))
    paths = api(settings).openapi()["paths"]
    actions = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    assert set(UNDO.undoable) | set(UNDO.final) <= actions


def test_a_role_change_goes_back_to_the_users_reach_before() -> None:
    before = {"username": "li", "roles": ["operator"], "sites": ["b1"], "duties": None, "account_id": None,
              "disabled": False, "tenant": "riverside"}
    assert UNDO.compensation(context("PUT /v1/users/{username}", path={"username": "li"},
                                     before={"status": 200, "json": before})) == Compensation(
        "PUT", "/v1/users/li", {"roles": ["operator"], "sites": ["b1"], "duties": None, "account_id": None,
                                "disabled": False})


def test_a_new_user_is_disabled_and_a_new_client_revoked() -> None:
    made = context("POST /v1/users", status=201, body={"username": "typo", "roles": ["auditor"]})
    assert UNDO.compensation(made) == Compensation("PUT", "/v1/users/typo", {
        "roles": ["auditor"], "sites": None, "duties": None, "account_id": None, "disabled": True})
    assert UNDO.compensation(context("POST /v1/clients", status=201, ids={"client_id": ["c-1"]})) == Compensation(
        "DELETE", "/v1/clients/c-1")


def test_tokens_passwords_and_keys_are_final() -> None:
    for action in ("POST /oauth/token", "POST /v1/users/{username}/password", "POST /v1/keys/rotate"):
        assert isinstance(UNDO.compensation(context(action)), CannotUndo)
